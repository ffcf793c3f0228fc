"""`cadenza generator [flags]` (or `python -m services.generator`): one generation worker. Needs
NATS_URL (and CADENZA_NAMESPACE when not `cadenza`); each flag defaults to its CADENZA_GENERATOR_*
variable."""
from __future__ import annotations

import argparse
import asyncio
import sys
from functools import partial

from services.generator.settings import GeneratorSettings, add_arguments, from_arguments
from services.settings import Settings
from services.supervisor import run_alone


async def generate(settings: Settings, stop: asyncio.Event, generator: GeneratorSettings) -> None:
    # The worker brings torch and transformers (seconds to import): loaded only once the flags and
    # NATS_URL are known to be good, so that a usage error or --help answers at once.
    from services.generator.worker import run_generator
    await run_generator(settings, stop, generator=generator)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cadenza generator", description=__doc__)
    add_arguments(parser)
    try:
        generator = from_arguments(parser.parse_args(argv))
    except ValueError as error:  # a flag or CADENZA_* value out of range: usage error, exit 2
        parser.error(str(error))
    return run_alone("generator", partial(generate, generator=generator))


if __name__ == "__main__":
    sys.exit(main())
