"""Worker logging: every record goes to stderr as exactly one line (the SDK reads stderr line by line).

Newlines inside a message or traceback are written as the two characters `\\n`.
"""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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
    logging.captureWarnings(True)
