"""The training CLI's contract with whoever runs it: its exit codes (what stdout's JSON lines mean
is in model/README.md). The CLI and the trainer service both read them from here."""

EXIT_OK = 0
EXIT_FAILED = 1  # training failed: a `failed` line, traceback on stderr
EXIT_BAD_INPUT = 2  # dataset row, audio file, configuration, base model or checkpoint: a `failed` line
EXIT_STOPPED = 3  # SIGTERM/SIGINT: a checkpoint was saved; resume with --resume
