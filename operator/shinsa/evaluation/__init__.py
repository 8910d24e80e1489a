"""The evaluation engine: what runs inside an EvalRun Job, and `shinsa eval run` on a laptop."""

EXIT_OK = 0
EXIT_CRASH = 1
EXIT_CONFIG = 2
EXIT_INCOMPLETE = 3
# 128 + SIGTERM, as a shell reports a process killed by it; here the checkpoint was flushed first.
EXIT_TERMINATED = 143
