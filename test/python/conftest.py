"""Shared pytest setup: import the worker from the source tree and keep torch to one thread
(the CI/dev machines are small and shared)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

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


# ------------------------------------------------------------------------------ worker subprocesses

TEST_DIR = Path(__file__).resolve().parent


class WorkerProcess:
    """A `python -m softprompt_worker` subprocess with the test ops, and its READY announcement."""

    def __init__(self, endpoint: str, *extra: str) -> None:
        env = {**os.environ, "SOFTPROMPT_EXTRA_OP_MODULES": "test_server_plugin",
               "PYTHONPATH": os.pathsep.join([str(PYTHON_SRC), str(TEST_DIR)])}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "softprompt_worker", "--endpoint", endpoint, "--log-level", "warning", *extra],
            stdout=subprocess.PIPE, env=env)
        line = self.proc.stdout.readline().decode()
        assert line.startswith("SOFTPROMPT_READY "), f"unexpected first stdout line: {line!r}"
        self.ready: dict[str, Any] = json.loads(line.split(" ", 1)[1])
        self.endpoint: str = self.ready["endpoint"]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout=10)
        finally:
            self.proc.stdout.close()


class Client:
    """A DEALER speaking the wire protocol with a plain msgpack header (independent of protocol.py)."""

    # The receive timeout only guards against a hang; it checks no speed. A module's first compute call
    # imports transformers and loads a model in the worker: over 10 s once on a loaded 2-core CI machine.
    def __init__(self, endpoint: str, timeout_ms: int = 60_000) -> None:
        import zmq

        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.RCVTIMEO, timeout_ms)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)

    def send(self, id_: int, op: str, body: dict | None = None, tensors: list[tuple[str, str, list[int], Any]] = ()) -> None:
        import msgpack

        descs = [{"name": n, "dtype": d, "shape": s} for n, d, s, _ in tensors]
        header = {"v": 1, "id": id_, "kind": "request", "op": op, "body": body or {}, "tensors": descs}
        self.sock.send_multipart([msgpack.packb(header), *(data for *_, data in tensors)], copy=False)

    def recv(self) -> tuple[dict[str, Any], list[Any]]:
        import msgpack

        frames = self.sock.recv_multipart(copy=False)
        return msgpack.unpackb(frames[0].bytes), frames[1:]

    def call(self, id_: int, op: str, body: dict | None = None, tensors=()) -> tuple[dict[str, Any], list[Any]]:
        self.send(id_, op, body, tensors)
        return self.recv()

    def close(self) -> None:
        self.sock.close()
        self.ctx.term()


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    d = tmp_path_factory.mktemp("ipc")
    d.chmod(0o700)
    w = WorkerProcess(f"ipc://{d}/worker.sock", "--parent-pid", str(os.getpid()))
    yield w
    w.stop()


@pytest.fixture
def client(worker: WorkerProcess) -> Iterator[Client]:
    c = Client(worker.endpoint)
    yield c
    c.close()
