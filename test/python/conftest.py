"""Shared pytest setup: import the worker from the source tree and keep torch to one thread
(the CI/dev machines are small and shared)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYTHON_SRC = REPO / "python"
if str(PYTHON_SRC) not in sys.path:
    sys.path.insert(0, str(PYTHON_SRC))
# Subprocess workers started by tests find the package the same way.
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in [str(PYTHON_SRC), os.environ.get("PYTHONPATH", "")] if p)
os.environ.setdefault("OMP_NUM_THREADS", "1")

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # the protocol tests do not need torch
    pass
