"""protocol.py against the shared vectors (test/vectors/wire.json), byte for byte."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from softprompt_worker.serving import protocol
from softprompt_worker.serving.protocol import DecodeFailure, Message, WireTensor, decode, encode

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
DOC = json.loads((VECTORS / "wire.json").read_text(encoding="utf-8"))


def frames_of(case: dict) -> list[bytes]:
    return [bytes.fromhex(h) for h in case["frames_hex"]]


def test_vectors_file_is_up_to_date() -> None:
    spec = importlib.util.spec_from_file_location("make_wire_vectors", VECTORS / "make_wire_vectors.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert (VECTORS / "wire.json").read_text(encoding="utf-8") == gen.build(), "run make_wire_vectors.py"


@pytest.mark.parametrize("case", DOC["valid"], ids=lambda c: c["name"])
def test_decode_valid(case: dict) -> None:
    msg = decode(frames_of(case))
    h = case["header"]
    assert (msg.id, msg.kind, msg.op, msg.body) == (h["id"], h["kind"], h["op"], h["body"])
    assert [(t.name, t.dtype, list(t.shape)) for t in msg.tensors] == [
        (t["name"], t["dtype"], t["shape"]) for t in case["tensors"]]
    for got, want in zip(msg.tensors, case["tensors"]):
        assert got.array.tobytes() == bytes.fromhex(want["data_hex"])
        assert got.array.dtype == protocol.NUMPY_DTYPES[want["dtype"]]
        assert not got.array.flags.writeable  # a view of the frame, not a copy


@pytest.mark.parametrize("case", DOC["valid"], ids=lambda c: c["name"])
def test_encode_valid_byte_for_byte(case: dict) -> None:
    h = case["header"]
    tensors = [WireTensor(t["name"], t["dtype"], tuple(t["shape"]),
                          np.frombuffer(bytes.fromhex(t["data_hex"]), protocol.NUMPY_DTYPES[t["dtype"]]).reshape(t["shape"]))
               for t in case["tensors"]]
    frames = encode(Message(id=h["id"], kind=h["kind"], op=h["op"], body=h["body"], tensors=tensors))
    assert [bytes(f).hex() for f in frames] == case["frames_hex"]


@pytest.mark.parametrize("case", DOC["invalid"], ids=lambda c: c["name"])
def test_decode_invalid(case: dict) -> None:
    with pytest.raises(DecodeFailure) as info:
        decode(frames_of(case))
    failure = info.value
    assert (failure.error.code, failure.id, failure.op) == (case["error_code"], case["id"], case["op"])
    assert failure.error.message  # every rejection says why


def test_wire_dtypes_match_tensor_proto() -> None:
    assert set(protocol.WIRE_DTYPES) == set(protocol.NUMPY_DTYPES)


def test_limits() -> None:
    ok = DOC["valid"][2]
    frames = frames_of(ok)
    with pytest.raises(DecodeFailure) as info:
        decode(frames, protocol.Limits(max_total_bytes=len(b"".join(frames)) - 1))
    assert info.value.error.code == "too_large" and info.value.id == 3
    with pytest.raises(DecodeFailure) as info:
        decode(frames, protocol.Limits(max_frame_bytes=20))
    assert info.value.error.code == "too_large"
    assert "limit is 20" in info.value.error.message
    with pytest.raises(DecodeFailure) as info:
        decode([b"\x80" * 2_000_000])
    assert info.value.error.code == "too_large"


def test_empty_message() -> None:
    with pytest.raises(DecodeFailure) as info:
        decode([])
    assert info.value.error.code == "malformed_message"


def test_encode_rejects_what_this_side_built_wrongly() -> None:
    a = np.zeros(2, np.float32)
    with pytest.raises(ValueError, match="duplicate"):
        encode(Message(1, "reply", "x", {}, [WireTensor("t", "f32", (2,), a)] * 2))
    with pytest.raises(ValueError, match="does not match"):
        encode(Message(1, "reply", "x", {}, [WireTensor("t", "f32", (3,), a)]))
    with pytest.raises(TypeError, match="send it as a tensor"):
        encode(Message(1, "reply", "x", {"a": a}))


def test_encode_converts_numpy_scalars_and_byteorder() -> None:
    big = np.array([1.5, 2.5], dtype=">f4")
    frames = encode(Message(1, "reply", "x", {"loss": np.float32(0.5)}, [WireTensor("t", "f32", (2,), big)]))
    msg = decode(frames)
    assert msg.body == {"loss": 0.5}
    assert msg.tensors[0].array.tolist() == [1.5, 2.5]
