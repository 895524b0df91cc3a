"""Worker logging: every record goes to stderr as exactly one line (the SDK reads stderr line by line).

Newlines inside a message or traceback are written as the two characters `\\n`.
"""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Third-party notices that say nothing to the SDK's user, at the level from which they are shown.
# bitsandbytes (imported by peft whenever it is installed) warns at import on every CPU worker start that
# its optional hub kernel for 4-bit matmuls could not be fetched (no hub here); NF4 on the CPU then uses
# its built-in path, which test_quantize.py covers.
QUIET = {"bitsandbytes.backends.cpu.ops": logging.ERROR}


class OneLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\r", "").replace("\n", "\\n")


def setup_logging(level: str = "info") -> None:
    """Send all logging (and `warnings`) to stderr, one line per record, at `level`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name, quiet_level in QUIET.items():
        logging.getLogger(name).setLevel(max(quiet_level, root.level))
    logging.captureWarnings(True)
