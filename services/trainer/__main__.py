"""`cadenza trainer [flags]` (or `python -m services.trainer`): one trainer process. Needs NATS_URL
(and CADENZA_NAMESPACE when not `cadenza`); each flag defaults to its CADENZA_TRAINER_* variable."""
from __future__ import annotations

import argparse
import sys
from functools import partial

from services.supervisor import run_alone
from services.trainer.settings import add_arguments, from_arguments
from services.trainer.worker import run_trainer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cadenza trainer", description=__doc__)
    add_arguments(parser)
    try:
        trainer = from_arguments(parser.parse_args(argv))
    except ValueError as error:  # a flag or CADENZA_* value out of range: usage error, exit 2
        parser.error(str(error))
    return run_alone("trainer", partial(run_trainer, trainer=trainer))


if __name__ == "__main__":
    sys.exit(main())
