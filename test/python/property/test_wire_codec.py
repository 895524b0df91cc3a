"""Property tests of the Python wire codec (protocol.py, spec: proto/WIRE.md).

- decode(encode(m)) == m for random valid messages: every dtype, ranks 0..4 with zero-sized
  dimensions, random bodies of every MessagePack type, ids across the whole range.
- Random bytes, byte-level mutations of valid messages and field-level corruptions of valid headers
  are either a message or a DecodeFailure with a wire error (malformed_message, too_large,
  protocol_version_mismatch), never another exception; a corrupted field is named in the message.
- Size limits: a message is refused with too_large exactly when it is over one of the limits, and the
  error names the limit and the size.
"""

from __future__ import annotations

import math

import msgpack
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from softprompt_worker.serving import protocol
from softprompt_worker.serving.protocol import (KINDS, MAX_ID, NUMPY_DTYPES, DecodeFailure, Limits, Message, WireTensor,
                                        decode, encode)

SETTINGS = settings(max_examples=300, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
WIRE_CODES = {"malformed_message", "too_large", "protocol_version_mismatch"}

names = st.text(max_size=8)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1),
                    st.floats(allow_nan=False), st.text(max_size=10), st.binary(max_size=10))
bodies = st.dictionaries(names, st.recursive(
    scalars, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(names, inner, max_size=3)),
    max_leaves=10), max_size=5)


@st.composite
def tensors(draw, name: str) -> WireTensor:
    dtype = draw(st.sampled_from(sorted(NUMPY_DTYPES)))
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=4)))
    np_dtype = NUMPY_DTYPES[dtype]
    raw = draw(st.binary(min_size=math.prod(shape) * np_dtype.itemsize, max_size=math.prod(shape) * np_dtype.itemsize))
    if dtype == "bool":  # numpy bools are one byte holding 0 or 1
        raw = bytes(b & 1 for b in raw)
    return WireTensor(name=name, dtype=dtype, shape=shape, array=np.frombuffer(raw, dtype=np_dtype).reshape(shape))


@st.composite
def messages(draw) -> Message:
    kind = draw(st.sampled_from(KINDS))
    id_ = draw(st.integers(0 if kind == "error" else 1, MAX_ID))
    tensor_names = draw(st.lists(names, unique=True, max_size=4))
    return Message(id=id_, kind=kind, op=draw(names), body=draw(bodies),
                   tensors=[draw(tensors(n)) for n in tensor_names])


def _check_failure(exc: DecodeFailure) -> None:
    assert exc.error.code in WIRE_CODES, exc.error.code
    assert exc.error.message
    assert isinstance(exc.id, int) and isinstance(exc.op, str)


def _decode_or_failure(frames) -> Message | None:
    try:
        return decode(frames)
    except DecodeFailure as exc:
        _check_failure(exc)
        return None


@SETTINGS
@given(messages())
def test_decode_inverts_encode(msg):
    frames = encode(msg)
    got = decode([bytes(f) for f in frames])
    assert (got.id, got.kind, got.op, got.body) == (msg.id, msg.kind, msg.op, msg.body)
    assert [(t.name, t.dtype, t.shape) for t in got.tensors] == [(t.name, t.dtype, t.shape) for t in msg.tensors]
    for a, b in zip(got.tensors, msg.tensors):
        assert a.array.dtype == NUMPY_DTYPES[b.dtype] and a.array.tobytes() == b.array.tobytes()
    assert encode(got)[0] == frames[0]  # canonical: re-encoding gives the same header bytes


@SETTINGS
@given(st.lists(st.binary(max_size=64), min_size=0, max_size=4))
def test_random_bytes_never_raise_anything_but_decode_failure(frames):
    _decode_or_failure(frames)


@SETTINGS
@given(messages(), st.data())
def test_mutated_frames_never_raise_anything_but_decode_failure(msg, data):
    frames = [bytearray(bytes(f)) for f in encode(msg)]
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(frames) - 1))
        frame = frames[i]
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate", "drop_frame", "add_frame"]))
        if op == "flip" and frame:
            at = data.draw(st.integers(0, len(frame) - 1))
            frame[at] ^= data.draw(st.integers(1, 255))
        elif op == "insert":
            at = data.draw(st.integers(0, len(frame)))
            frame[at:at] = data.draw(st.binary(min_size=1, max_size=4))
        elif op == "delete" and frame:
            at = data.draw(st.integers(0, len(frame) - 1))
            del frame[at]
        elif op == "truncate":
            del frame[data.draw(st.integers(0, len(frame))):]
        elif op == "drop_frame" and len(frames) > 1:
            del frames[i]
        elif op == "add_frame":
            frames.append(bytearray(data.draw(st.binary(max_size=16))))
    _decode_or_failure([bytes(f) for f in frames])


WRONG = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), -1), st.integers(2**53, 2**64 - 1),
                  st.floats(), st.text(max_size=4), st.binary(max_size=4), st.lists(st.integers(-5, 5), max_size=2),
                  st.dictionaries(st.text(max_size=2), st.integers(-5, 5), max_size=2))


def _header(msg: Message) -> dict:
    return {"v": 1, "id": msg.id, "kind": msg.kind, "op": msg.op, "body": msg.body,
            "tensors": [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape)} for t in msg.tensors]}


@SETTINGS
@given(messages(), st.sampled_from(["v", "id", "kind", "op", "body", "tensors"]), WRONG)
def test_a_corrupted_header_field_is_named(msg, field, value):
    header = _header(msg)
    header[field] = value
    frames = [msgpack.packb(header, use_bin_type=True)] + [t.array.tobytes() for t in msg.tensors]
    try:
        decode(frames)
    except DecodeFailure as exc:
        _check_failure(exc)
        assert field in exc.error.message, (field, exc.error.message)
        return
    # Accepted only if the value is valid for the field after all.
    assert field in ("body", "tensors", "op") or (field == "id" and type(value) is int), (field, value)


@SETTINGS
@given(messages().filter(lambda m: m.tensors), st.data())
def test_a_corrupted_descriptor_field_is_named(msg, data):
    header = _header(msg)
    i = data.draw(st.integers(0, len(msg.tensors) - 1))
    field = data.draw(st.sampled_from(["name", "dtype", "shape", "extra", "missing"]))
    desc = header["tensors"][i]
    if field == "extra":
        desc["stride"] = 1
    elif field == "missing":
        del desc[data.draw(st.sampled_from(["name", "dtype", "shape"]))]
    else:
        desc[field] = data.draw(WRONG)
    frames = [msgpack.packb(header, use_bin_type=True)] + [t.array.tobytes() for t in msg.tensors]
    try:
        decode(frames)
    except DecodeFailure as exc:
        _check_failure(exc)
        assert f"tensors[{i}]" in exc.error.message or f"tensor frame {i + 1}" in exc.error.message \
            or "used twice" in exc.error.message, exc.error.message
        return
    assert field in ("name", "shape"), field  # a string name, or a shape with the same byte count


@SETTINGS
@given(messages(), st.integers(1, 4096), st.integers(1, 4096), st.integers(1, 4096))
def test_too_large_exactly_when_over_a_limit(msg, max_header, max_frame, max_total):
    limits = Limits(max_header_bytes=max_header, max_frame_bytes=max_frame, max_total_bytes=max_total)
    frames = [bytes(f) for f in encode(msg)]
    sizes = [len(f) for f in frames]
    over_header = sizes[0] > max_header
    over_frame = any(s > max_frame for s in sizes[1:])
    over_total = sum(sizes) > max_total
    try:
        decode(frames, limits)
    except DecodeFailure as exc:
        assert exc.error.code == "too_large", exc.error.message
        assert "the limit is" in exc.error.message
        return
    assert not (over_header or over_frame or over_total)


def test_the_worker_flag_sets_both_message_limits():
    from softprompt_worker.__main__ import parse_args

    assert parse_args(["--max-message-bytes", "1234"]).max_message_bytes == 1234
    assert protocol.Limits().max_total_bytes == protocol.Limits().max_frame_bytes == 2 * protocol.GiB
