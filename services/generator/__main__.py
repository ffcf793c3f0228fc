"""`cadenza generator [flags]` (or `python -m services.generator`): one generation worker. Needs
NATS_URL (and CADENZA_NAMESPACE when not `cadenza`); each flag defaults to its CADENZA_GENERATOR_*
variable."""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from functools import partial

from services.generator.settings import add_arguments, from_arguments
from services.generator.worker import run_generator
from services.settings import Settings
from services.supervisor import run_services


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cadenza generator", description=__doc__)
    add_arguments(parser)
    generator = from_arguments(parser.parse_args(argv))
    settings = Settings.from_env()
    if not settings.nats_url:
        print("the generation worker needs NATS_URL", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(run_services(settings, {"generator": partial(run_generator, generator=generator)}))


if __name__ == "__main__":
    sys.exit(main())
