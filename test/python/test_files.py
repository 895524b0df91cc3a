"""Files a request names are read without hanging or running out of memory (files.py): a FIFO, a device,
a link and an oversized file are refused at once; a stuck compute thread shows in `health`."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from conftest import Client
from softprompt_worker import files
from softprompt_worker.training.checkpoints import load_checkpoint
from softprompt_worker.data import load_jsonl
from softprompt_worker.errors import InvalidArgumentError, NotFoundError


def _fifo(tmp_path: Path) -> Path:
    path = tmp_path / "step-1.pb"
    os.mkfifo(path)
    return path


def _within(seconds: float, fn, *args):
    """Run fn(*args) in a thread; fail (not hang the suite) if it takes longer than `seconds`."""
    out: dict[str, object] = {}

    def run() -> None:
        try:
            out["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"{fn!r} still running after {seconds} s"
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return out.get("value")


def test_a_fifo_checkpoint_is_refused_not_waited_on(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="is a FIFO; only regular files"):
        _within(5, load_checkpoint, _fifo(tmp_path))


def test_dev_zero_is_refused_before_reading() -> None:
    with pytest.raises(InvalidArgumentError, match="character device"):
        _within(5, load_checkpoint, "/dev/zero")
    with pytest.raises(InvalidArgumentError, match="character device"):
        _within(5, lambda: files.read_regular_file("/dev/zero", max_bytes=10, what="x"))


def test_a_link_is_refused_and_a_large_file_is_refused_before_reading(tmp_path: Path) -> None:
    real = tmp_path / "real.pb"
    real.write_bytes(b"x" * 100)
    (tmp_path / "link.pb").symlink_to(real)
    with pytest.raises(InvalidArgumentError, match="symbolic link"):
        load_checkpoint(tmp_path / "link.pb")
    with pytest.raises(InvalidArgumentError, match="100 bytes, over the limit of 99"):
        files.read_regular_file(real, max_bytes=99, what="checkpoint")
    assert files.read_regular_file(real, max_bytes=100, what="checkpoint") == b"x" * 100
    with pytest.raises(NotFoundError, match="no file at"):
        load_checkpoint(tmp_path / "missing.pb")
    with pytest.raises(InvalidArgumentError, match="directory"):
        load_checkpoint(tmp_path)


def test_a_fifo_data_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="is a FIFO"):
        _within(5, load_jsonl, _fifo(tmp_path), lambda row: None)


def test_a_fifo_checkpoint_leaves_the_worker_compute_thread_free(client: Client, tmp_path: Path) -> None:
    fifo = _fifo(tmp_path)
    client.sock.setsockopt(__import__("zmq").RCVTIMEO, 10_000)
    h, _ = client.call(1, "checkpoint_inspect", {"path": str(fifo)})
    assert (h["kind"], h["body"]["code"]) == ("error", "invalid_argument") and "FIFO" in h["body"]["message"]
    h, _ = client.call(2, "checkpoint_inspect", {"path": "/dev/zero"})
    assert (h["kind"], h["body"]["code"]) == ("error", "invalid_argument")
    h, _ = client.call(3, "test_stream", {"n": 1})  # a later compute call still runs
    assert h["kind"] == "event"
    assert client.recv()[0]["body"] == {"done": 1}


def test_health_reports_a_stuck_compute_thread(client: Client) -> None:
    h, _ = client.call(1, "health")
    assert h["kind"] == "reply" and h["body"]["compute"]["state"] == "idle" and not h["body"]["compute"]["stuck"]
    client.send(2, "test_block", {"s": 2.0})
    time.sleep(1.2)
    h, _ = client.call(3, "health", {"stuck_after_s": 0.5})
    compute = h["body"]["compute"]
    assert (compute["state"], compute["op"], compute["request_id"], compute["stuck"]) == ("busy", "test_block", 2, True)
    assert compute["since_beat_s"] >= 1.0
    assert client.recv()[0]["id"] == 2  # the block ends
    h, _ = client.call(4, "health", {"stuck_after_s": 0.5})
    assert h["body"]["compute"]["state"] == "idle" and not h["body"]["compute"]["stuck"]
    h, _ = client.call(5, "health", {"stuck_after_s": "soon"})
    assert (h["kind"], h["body"]["code"]) == ("error", "invalid_argument")
