"""A real worker subprocess over a real socket: handshake, control path, streaming, cancellation."""

from __future__ import annotations

import select
import signal
import subprocess
import sys
import time

import msgpack
import numpy as np
import pytest

from conftest import Client, WorkerProcess


def test_ready_line_and_hello(worker: WorkerProcess, client: Client) -> None:
    assert worker.ready["protocol"] == 1 and worker.ready["pid"] == worker.proc.pid
    assert worker.endpoint.startswith("ipc://")
    h, frames = client.call(1, "hello", {"protocol": 1, "client": "pytest"})
    assert (h["kind"], h["id"], h["op"], frames) == ("reply", 1, "hello", [])
    assert h["body"]["protocol"] == 1 and h["body"]["pid"] == worker.proc.pid
    caps = h["body"]["capabilities"]
    assert set(caps) >= {"python", "torch", "transformers", "peft", "devices", "cuda", "bf16", "gpus", "methods"}
    assert "cpu" in caps["devices"]
    h, _ = client.call(2, "hello", {"protocol": 99, "client": "pytest"})
    assert (h["kind"], h["body"]["code"]) == ("error", "protocol_version_mismatch")
    h, _ = client.call(3, "info")
    assert h["body"]["capabilities"] == caps


def test_thousand_pings(client: Client) -> None:
    start = time.perf_counter()
    for i in range(1, 1001):
        h, _ = client.call(i, "ping")
        assert (h["kind"], h["id"]) == ("reply", i)
    assert time.perf_counter() - start < 20


@pytest.mark.parametrize("dtype,np_dtype", [("f32", "<f4"), ("bf16", "<u2"), ("i64", "<i8")])
def test_echo_is_bit_exact(client: Client, dtype: str, np_dtype: str) -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2**63, size=(3, 7), dtype=np.uint64).view(np.uint8)[:, : 7 * np.dtype(np_dtype).itemsize]
    a = np.ascontiguousarray(a).view(np_dtype)  # random bits: NaN payloads, subnormals, ...
    h, frames = client.call(5, "echo", {}, [("a", dtype, list(a.shape), a), ("s", dtype, [], a[0, :1].reshape(()))])
    assert h["tensors"] == [{"name": "a", "dtype": dtype, "shape": [3, 7]}, {"name": "s", "dtype": dtype, "shape": []}]
    assert frames[0].bytes == a.tobytes() and frames[1].bytes == a[0, :1].tobytes()


def test_echo_64_mib(client: Client) -> None:
    big = np.random.default_rng(1).standard_normal(16 * 2**20, dtype=np.float32)  # 64 MiB
    h, frames = client.call(6, "echo", {}, [("big", "f32", [4, 4 * 2**20], big)])
    assert h["kind"] == "reply"
    assert np.array_equal(np.frombuffer(frames[0].buffer, np.float32), big)


def test_compute_op_streams_while_control_answers(client: Client) -> None:
    client.send(10, "test_stream", {"n": 1000, "interval": 0.01})
    h, _ = client.recv()
    assert (h["kind"], h["id"], h["body"]) == ("event", 10, {"i": 0})
    t0 = time.perf_counter()
    h = _next_reply(client, 11, lambda: client.send(11, "ping"))
    assert time.perf_counter() - t0 < 1.0, "ping waited for the compute thread"
    h = _next_reply(client, 12, lambda: client.send(12, "cancel", {"target": 10}))
    assert h["body"] == {"found": True}
    final = _next_reply(client, 10, lambda: None)
    assert (final["kind"], final["body"]["code"]) == ("error", "cancelled")
    h, _ = client.call(13, "cancel", {"target": 10})
    assert h["body"] == {"found": False}
    h, _ = client.call(14, "test_stream", {"n": 0})
    assert (h["kind"], h["body"]) == ("reply", {"done": 0})


def test_queued_requests_run_in_order_and_duplicate_ids_are_refused(client: Client) -> None:
    client.send(20, "test_stream", {"n": 2, "interval": 0.05})
    client.send(21, "test_stream", {"n": 1})
    client.send(20, "test_stream", {"n": 1})
    seen = [client.recv()[0] for _ in range(6)]
    dup = [h for h in seen if h["kind"] == "error"]
    assert len(dup) == 1 and dup[0]["id"] == 20 and "already used" in dup[0]["body"]["message"]
    order = [(h["id"], h["kind"]) for h in seen if h["kind"] != "error"]
    assert order == [(20, "event"), (20, "event"), (20, "reply"), (21, "event"), (21, "reply")]


def test_errors_cross_the_wire_typed(client: Client) -> None:
    h, _ = client.call(30, "test_fail")
    assert h["body"]["code"] == "internal" and h["body"]["message"] == "ValueError: boom"
    assert "Traceback" in h["body"]["details"]["traceback"]
    h, _ = client.call(31, "test_oom")
    assert h["body"]["code"] == "out_of_memory" and "gradient accumulation" in h["body"]["message"]
    h, _ = client.call(32, "no_such_op")
    assert (h["id"], h["op"], h["body"]["code"]) == (32, "no_such_op", "unknown_op")
    h, _ = client.call(33, "cancel", {"target": "x"})
    assert h["body"]["code"] == "invalid_argument"


def test_torch_reply_tensors(client: Client) -> None:
    h, frames = client.call(40, "test_torch_out")
    assert h["tensors"] == [{"name": "bf", "dtype": "bf16", "shape": [2, 3]}, {"name": "t", "dtype": "f32", "shape": [3, 2]}]
    assert np.frombuffer(frames[0].bytes, "<u2").tolist() == [0, 0x3F80, 0x4000, 0x4040, 0x4080, 0x40A0]
    assert np.frombuffer(frames[1].bytes, "<f4").tolist() == [0, 3, 1, 4, 2, 5]


def test_shutdown_op_exits_zero() -> None:
    w = WorkerProcess("tcp://127.0.0.1:*")
    assert w.endpoint.startswith("tcp://127.0.0.1:") and not w.endpoint.endswith("*")
    c = Client(w.endpoint)
    h, _ = c.call(1, "shutdown")
    assert (h["kind"], h["op"]) == ("reply", "shutdown")
    assert w.proc.wait(timeout=10) == 0
    c.close()
    w.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_cleanly(sig: int) -> None:
    w = WorkerProcess("tcp://127.0.0.1:*")
    w.proc.send_signal(sig)
    assert w.proc.wait(timeout=10) == 0
    w.stop()


def test_exits_when_parent_dies(tmp_path) -> None:
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    w = WorkerProcess("tcp://127.0.0.1:*", "--parent-pid", str(parent.pid))
    parent.kill()
    parent.wait()
    assert w.proc.wait(timeout=10) == 0
    w.stop()


def test_stdout_holds_only_the_ready_line(worker: WorkerProcess) -> None:
    # After the READY line the worker points its stdout at stderr, so the pipe reaches EOF.
    ready, _, _ = select.select([worker.proc.stdout], [], [], 10)
    assert ready and worker.proc.stdout.read() == b""
    assert worker.proc.poll() is None


def _next_reply(client: Client, id_: int, send) -> dict:
    """Send, then skip events of other requests until the final message of request `id_`."""
    send()
    while True:
        h, _ = client.recv()
        if h["id"] == id_ and h["kind"] in ("reply", "error"):
            return h
        assert h["kind"] == "event", h
