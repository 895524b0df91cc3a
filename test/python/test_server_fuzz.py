"""Fuzz one live worker with >= 10,000 bad, mutated and random messages; it must answer each with
exactly one reply or error (the right code where the damage is known) and keep serving."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest

from conftest import Client, WorkerProcess
from softprompt_worker.errors import ERROR_CODES

N_MESSAGES = 10_000
ANY = None  # expected code unknown (a random mutation may even yield a valid request)


@pytest.fixture(scope="module")
def fuzz_worker() -> Iterator[WorkerProcess]:
    w = WorkerProcess("tcp://127.0.0.1:*")
    yield w
    w.stop()


def _header(id_: int = 7, op: str = "echo", tensors: list[dict[str, Any]] | None = None, **over: Any) -> dict[str, Any]:
    h = {"v": 1, "id": id_, "kind": "request", "op": op, "body": {},
         "tensors": [{"name": "t", "dtype": "f32", "shape": [2]}] if tensors is None else tensors}
    h.update(over)
    return h


TWO_F32 = b"\x00\x00\x80\x3f\x00\x00\x00\x40"
WRONG = [None, [], {}, "x", -1, 1.5, True, b"bin", 2**64 - 1, [1, 2], {"a": 1}]


def _wrong_type(rng: random.Random) -> tuple[list[bytes], str, int, str]:
    field = rng.choice(["v", "id", "kind", "op", "body", "tensors"])
    value = rng.choice(WRONG)
    h = _header()
    h[field] = value
    id_ = 7 if field != "id" else 0
    op = "echo" if field != "op" else ""
    if field == "v" and type(value) is int and value >= 0:
        return [msgpack.packb(h), TWO_F32], "protocol_version_mismatch", id_, op
    if (field, value) in (("body", {}), ("body", {"a": 1})):
        return [msgpack.packb(h), TWO_F32], "reply", 7, "echo"
    if field == "op" and isinstance(value, str):
        return [msgpack.packb(h), TWO_F32], "unknown_op", 7, value
    return [msgpack.packb(h), TWO_F32], "malformed_message", id_, op


def _bad_descriptor(rng: random.Random) -> tuple[list[bytes], str, int, str]:
    shape, code = rng.choice([
        ([2**40, 2**40], "too_large"), ([2**64 - 1], "too_large"), ([2**31, 2**31, 2], "too_large"),
        ([-1], "malformed_message"), ([1.5], "malformed_message"), ("2", "malformed_message"),
        ([1] * 40, "malformed_message"), ([3], "malformed_message"), ([], "malformed_message"),
    ])
    dtype = rng.choice(["f32", "f32", "x", 3, "F32"])
    if dtype != "f32":  # the dtype is checked before the shape
        code = "malformed_message"
    return [msgpack.packb(_header(tensors=[{"name": "t", "dtype": dtype, "shape": shape}])), TWO_F32], code, 7, "echo"


def _frames_count(rng: random.Random) -> tuple[list[bytes], str, int, str]:
    head = msgpack.packb(_header())
    frames = rng.choice([[head], [head, TWO_F32, TWO_F32], [head, b""], [head, TWO_F32 * 3], [head, TWO_F32[:3]]])
    return frames, "malformed_message", 7, "echo"


def _random_bytes(rng: random.Random) -> tuple[list[bytes], str, int, str]:
    frames = [rng.randbytes(rng.randint(0, 64)) for _ in range(rng.randint(1, 3))]
    if frames[0][:1] == b"\xc0" or frames[0] == b"":
        return frames, "malformed_message", 0, ""
    return frames, ANY, 0, ""


def _bit_flip(rng: random.Random) -> tuple[list[bytes], str, int, str]:
    head = bytearray(msgpack.packb(_header(id_=rng.randint(1, 2**40))))
    for _ in range(rng.randint(1, 3)):
        head[rng.randrange(len(head))] ^= 1 << rng.randrange(8)
    return [bytes(head), TWO_F32], ANY, 0, ""


def _truncated(rng: random.Random) -> tuple[list[bytes], str, int, str]:
    head = msgpack.packb(_header())
    return [head[: rng.randrange(len(head))], TWO_F32], "malformed_message", 0, ""


def _odd_msgpack(rng: random.Random) -> tuple[list[bytes], str, int, str]:
    frames = rng.choice([
        [b"\x91" * 5000 + b"\xc0"],                          # very deep nesting
        [msgpack.packb({1: 2})],                              # non-string key
        [msgpack.packb(msgpack.ExtType(5, b"xx"))],           # extension type
        [msgpack.packb(_header(op="ping", tensors=[], body={"x": msgpack.ExtType(1, b"")}))],
        [b"\xdb\xff\xff\xff\xff"],                            # str32 claiming 4 GiB
        [b"\xdd\xff\xff\xff\xff"],                            # array32 claiming 4G items
    ])
    return frames, "malformed_message", 0, ""


def _valid(rng: random.Random) -> tuple[list[bytes], str, int, str]:
    id_ = rng.randint(1, 2**53 - 1)
    return [msgpack.packb(_header(id_=id_, op="ping", tensors=[]))], "reply", id_, "ping"


GENERATORS = [_wrong_type, _bad_descriptor, _frames_count, _random_bytes, _bit_flip, _truncated, _odd_msgpack, _valid]


def test_fuzz_worker_survives_and_answers_each_message(fuzz_worker: WorkerProcess) -> None:
    rng = random.Random(20240601)
    client = Client(fuzz_worker.endpoint)
    seen: Counter[str] = Counter()
    start = time.perf_counter()
    try:
        for n in range(N_MESSAGES):
            gen = GENERATORS[n % len(GENERATORS)]
            frames, want, want_id, want_op = gen(rng)
            client.sock.send_multipart(frames)
            reply = client.sock.recv_multipart()
            h = msgpack.unpackb(reply[0])
            assert h["kind"] in ("reply", "error"), (gen.__name__, frames, h)
            got = h["kind"] if h["kind"] == "reply" else h["body"]["code"]
            seen[got] += 1
            if h["kind"] == "error":
                assert h["body"]["code"] in ERROR_CODES and h["body"]["message"]
                assert h["body"]["code"] != "internal", (gen.__name__, frames, h)
            if want is not ANY:
                assert (got, h["id"], h["op"]) == (want, want_id, want_op), (gen.__name__, frames, h)
        h, _ = client.call(1, "ping")
        assert (h["kind"], h["id"]) == ("reply", 1)
    finally:
        client.close()
    assert fuzz_worker.proc.poll() is None
    assert time.perf_counter() - start < 60
    assert {"reply", "malformed_message", "too_large", "protocol_version_mismatch", "unknown_op"} <= set(seen)
