"""Framing of softprompt messages: MessagePack header frame + raw tensor frames.

The format is specified in `proto/WIRE.md` (this module does not restate it); the shared vectors in
`test/vectors/wire.json` pin it byte for byte. `decode` validates every header field and reads tensors
in place (zero-copy numpy views of the frames); `encode` writes the header with its keys in the order
v, id, kind, op, body, tensors and MessagePack's smallest encodings, then one frame per tensor.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

from softprompt_worker import PROTOCOL_VERSION
from softprompt_worker._proto.softprompt.v1 import tensor_pb2
from softprompt_worker.errors import (
    MalformedMessageError,
    ProtocolVersionMismatchError,
    TooLargeError,
    WorkerError,
)

#: Wire dtype -> numpy dtype (little-endian). bf16 has no numpy type: it travels as its uint16 bits.
NUMPY_DTYPES: dict[str, np.dtype] = {
    "f32": np.dtype("<f4"),
    "f16": np.dtype("<f2"),
    "bf16": np.dtype("<u2"),
    "f64": np.dtype("<f8"),
    "i64": np.dtype("<i8"),
    "i32": np.dtype("<i4"),
    "i16": np.dtype("<i2"),
    "i8": np.dtype("i1"),
    "u8": np.dtype("u1"),
    "bool": np.dtype("?"),
}
#: The wire dtype names, derived from tensor.proto's DType enum (the one source of truth).
WIRE_DTYPES: tuple[str, ...] = tuple(
    n[len("DTYPE_"):].lower() for n in tensor_pb2.DType.keys() if n != "DTYPE_UNSPECIFIED"
)
KINDS = ("request", "reply", "event", "error")
HEADER_KEYS = ("v", "id", "kind", "op", "body", "tensors")
_HEADER_KEY_SET = frozenset(HEADER_KEYS)
TENSOR_KEYS = ("name", "dtype", "shape")
MAX_ID = 2**53 - 1
MAX_RANK = 32
MiB = 1 << 20
GiB = 1 << 30


@dataclass(frozen=True)
class Limits:
    """Size limits applied by `decode`: over them the message gets `too_large`."""

    max_header_bytes: int = 1 * MiB
    max_frame_bytes: int = 2 * GiB
    max_total_bytes: int = 2 * GiB


@dataclass
class WireTensor:
    """One tensor of a message. `array` is C-contiguous with `NUMPY_DTYPES[dtype]` and `shape`."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    array: np.ndarray


@dataclass
class Message:
    """A decoded or to-be-encoded message (the header's `v` is implied)."""

    id: int
    kind: str
    op: str
    body: dict[str, Any] = field(default_factory=dict)
    tensors: list[WireTensor] = field(default_factory=list)


class DecodeFailure(Exception):
    """`decode` could not use a message. `error` is what to reply; `id`/`op` address the reply
    (`0`/`""` when they could not be read)."""

    def __init__(self, error: WorkerError, id: int = 0, op: str = "") -> None:
        super().__init__(error.message)
        self.error = error
        self.id = id
        self.op = op


# ---------------------------------------------------------------------------------------------- decode


def decode(frames: Sequence[Any], limits: Limits = Limits()) -> Message:
    """Decode one multipart message (routing identity already removed).

    `frames` are bytes-like or `zmq.Frame`s (received with `copy=False`); tensor arrays are read-only
    views of them. Raises `DecodeFailure` wrapping a `MalformedMessageError`, `TooLargeError` or
    `ProtocolVersionMismatchError`.
    """
    if len(frames) == 0:
        raise DecodeFailure(MalformedMessageError("empty message: expected a header frame"))
    head = frames[0]
    if type(head) is not bytes:  # the hot path (a small request) gets its header as bytes
        head = _buffer(head)
    head_bytes = len(head) if type(head) is bytes else head.nbytes
    if head_bytes > limits.max_header_bytes:
        raise DecodeFailure(TooLargeError(
            f"header frame is {head_bytes} bytes; the limit is {limits.max_header_bytes}"))
    header = _unpack_header(head)
    try:
        msg = _validate_header(header)
        descs = header["tensors"]
        if len(frames) == 1 and not descs and head_bytes <= limits.max_total_bytes:
            return msg  # no tensors: the total is the header, already checked
        bufs = [_buffer(f) for f in frames[1:]]
        total = head_bytes + sum(b.nbytes for b in bufs)
        if total > limits.max_total_bytes:
            raise TooLargeError(f"message is {total} bytes; the limit is {limits.max_total_bytes}")
        if len(bufs) != len(descs):
            raise MalformedMessageError(
                f"header.tensors describes {len(descs)} tensor(s) but {len(bufs)} tensor frame(s) followed")
        names: set[str] = set()
        for i, (desc, buf) in enumerate(zip(descs, bufs)):
            tensor = _read_tensor(i, desc, buf, limits)
            if tensor.name in names:
                raise MalformedMessageError(f"header.tensors[{i}].name {tensor.name!r:.80} is used twice")
            names.add(tensor.name)
            msg.tensors.append(tensor)
    except WorkerError as err:
        raise DecodeFailure(err, *_peek_address(header)) from None
    return msg


def _buffer(frame: Any) -> memoryview:
    buf = frame.buffer if hasattr(frame, "buffer") else memoryview(frame)
    return buf.cast("B") if buf.format != "B" or buf.ndim != 1 else buf


def _reject_ext(code: int, data: bytes) -> Any:
    raise MalformedMessageError(f"header: MessagePack extension type {code} is not allowed")


def _unpack_header(buf: bytes | memoryview) -> dict[str, Any]:
    try:
        header = msgpack.unpackb(buf, raw=False, strict_map_key=True, ext_hook=_reject_ext, timestamp=0)
    except WorkerError as err:
        raise DecodeFailure(err) from None
    except Exception as exc:  # noqa: BLE001 - msgpack raises many types for bad bytes
        raise DecodeFailure(MalformedMessageError(
            f"header is not valid MessagePack: {type(exc).__name__}: {exc}")) from None
    if not isinstance(header, dict):
        raise DecodeFailure(MalformedMessageError(f"header must be a map, got {_type(header)}"))
    return header


def _peek_address(header: dict[str, Any]) -> tuple[int, str]:
    """The id and op to address an error reply with, where they are valid; else 0 and ""."""
    id_ = header.get("id")
    op = header.get("op")
    return (id_ if _is_uint(id_) and 1 <= id_ <= MAX_ID else 0), (op if isinstance(op, str) else "")


def _validate_header(h: dict[str, Any]) -> Message:
    if h.keys() == _HEADER_KEY_SET and h["v"] == PROTOCOL_VERSION and type(h["v"]) is int:
        return _validate_fields(h)  # the usual case: skip the field-by-field search for what is wrong
    # The version first: another version may well have other fields.
    if "v" not in h:
        raise MalformedMessageError("header: missing field 'v'")
    v = h["v"]
    if not _is_uint(v):
        raise MalformedMessageError(f"header.v must be an unsigned integer, got {_type(v)}")
    if v != PROTOCOL_VERSION:
        raise ProtocolVersionMismatchError(
            f"header.v is {v}; this worker speaks protocol {PROTOCOL_VERSION}",
            details={"worker": PROTOCOL_VERSION, "client": v})
    for key in HEADER_KEYS:
        if key not in h:
            raise MalformedMessageError(f"header: missing field {key!r}")
    extra = [k for k in h if k not in HEADER_KEYS]
    if extra:
        raise MalformedMessageError(f"header: unknown field {extra[0]!r:.80}")
    return _validate_fields(h)


def _validate_fields(h: dict[str, Any]) -> Message:
    """Check the fields after `v` of a header that has exactly the `HEADER_KEYS`."""
    id_ = h["id"]
    if not _is_uint(id_):
        raise MalformedMessageError(f"header.id must be an unsigned integer, got {_type(id_)}")
    if id_ > MAX_ID:
        raise MalformedMessageError(f"header.id must be below 2^53, got {id_}")
    kind = h["kind"]
    if not isinstance(kind, str) or kind not in KINDS:
        raise MalformedMessageError(f"header.kind must be one of {', '.join(KINDS)}, got {kind!r:.80}")
    if id_ == 0 and kind != "error":
        raise MalformedMessageError("header.id must be at least 1 (0 is reserved for errors about unreadable messages)")
    op = h["op"]
    if not isinstance(op, str):
        raise MalformedMessageError(f"header.op must be a string, got {_type(op)}")
    body = h["body"]
    if not isinstance(body, dict):
        raise MalformedMessageError(f"header.body must be a map, got {_type(body)}")
    if not isinstance(h["tensors"], list):
        raise MalformedMessageError(f"header.tensors must be an array, got {_type(h['tensors'])}")
    return Message(id=id_, kind=kind, op=op, body=body)


def _read_tensor(i: int, desc: Any, buf: memoryview, limits: Limits) -> WireTensor:
    where = f"header.tensors[{i}]"
    if not isinstance(desc, dict):
        raise MalformedMessageError(f"{where} must be a map, got {_type(desc)}")
    for key in TENSOR_KEYS:
        if key not in desc:
            raise MalformedMessageError(f"{where}: missing field {key!r}")
    extra = [k for k in desc if k not in TENSOR_KEYS]
    if extra:
        raise MalformedMessageError(f"{where}: unknown field {extra[0]!r}")
    name, dtype, shape = desc["name"], desc["dtype"], desc["shape"]
    if not isinstance(name, str):
        raise MalformedMessageError(f"{where}.name must be a string, got {_type(name)}")
    if not isinstance(dtype, str) or dtype not in NUMPY_DTYPES:
        raise MalformedMessageError(f"{where}.dtype must be one of {' '.join(NUMPY_DTYPES)}, got {dtype!r}")
    if not isinstance(shape, list) or not all(_is_uint(d) for d in shape):
        raise MalformedMessageError(f"{where}.shape must be an array of unsigned integers, got {shape!r:.80}")
    if len(shape) > MAX_RANK:
        raise MalformedMessageError(f"{where}.shape has rank {len(shape)}; the limit is {MAX_RANK}")
    np_dtype = NUMPY_DTYPES[dtype]
    nbytes = math.prod(shape) * np_dtype.itemsize
    if nbytes > limits.max_frame_bytes:
        raise TooLargeError(f"{where} ({name!r}) declares {nbytes} bytes; the limit is {limits.max_frame_bytes}")
    if buf.nbytes != nbytes:
        raise MalformedMessageError(
            f"tensor frame {i + 1} ({name!r}) is {buf.nbytes} bytes; shape {shape} of {dtype} needs {nbytes}")
    array = np.frombuffer(buf, dtype=np_dtype).reshape(shape)
    return WireTensor(name=name, dtype=dtype, shape=tuple(shape), array=array)


def _is_uint(x: Any) -> bool:
    return type(x) is int and x >= 0


def _type(x: Any) -> str:
    return {dict: "map", list: "array", str: "string", bytes: "binary", bool: "boolean",
            int: "integer", float: "float", type(None): "nil"}.get(type(x), type(x).__name__)


# ---------------------------------------------------------------------------------------------- encode


def encode(msg: Message) -> list[Any]:
    """Encode `msg` into frames: header `bytes`, then each tensor as a zero-copy uint8 view of its
    array (send with `copy=False`). Raises `ValueError`/`TypeError` for a message this side built wrongly
    (bad dtype, shape mismatch, duplicate name, a body MessagePack cannot carry)."""
    descs: list[dict[str, Any]] = []
    frames: list[Any] = [None]
    if msg.tensors:
        names: set[str] = set()
        for t in msg.tensors:
            if t.name in names:
                raise ValueError(f"duplicate tensor name {t.name!r}")
            names.add(t.name)
            if t.dtype not in NUMPY_DTYPES:
                raise ValueError(f"tensor {t.name!r}: unknown wire dtype {t.dtype!r}")
            a = t.array
            if a.dtype.itemsize != NUMPY_DTYPES[t.dtype].itemsize or tuple(a.shape) != tuple(t.shape):
                raise ValueError(f"tensor {t.name!r}: array {a.dtype}{list(a.shape)} does not match {t.dtype}{list(t.shape)}")
            if a.dtype.byteorder == ">":
                a = a.astype(a.dtype.newbyteorder("<"))
            a = c_contiguous(a)
            descs.append({"name": t.name, "dtype": t.dtype, "shape": [int(d) for d in t.shape]})
            frames.append(a.reshape(-1).view(np.uint8))
    header = {"v": PROTOCOL_VERSION, "id": msg.id, "kind": msg.kind, "op": msg.op, "body": msg.body,
              "tensors": descs}
    frames[0] = _packer().pack(header)
    return frames


_packers = threading.local()


def _packer() -> msgpack.Packer:
    """This thread's Packer (a Packer is not thread-safe; reusing one saves building it per message).
    It resets itself when `pack` raises, so a failed encode leaves nothing behind."""
    try:
        return _packers.packer
    except AttributeError:
        _packers.packer = msgpack.Packer(use_bin_type=True, default=_to_msgpack)
        return _packers.packer


def c_contiguous(a: np.ndarray) -> np.ndarray:
    """`a` itself when C-contiguous, else a C-contiguous copy (keeps 0-d arrays 0-d, unlike
    `np.ascontiguousarray`)."""
    return a if a.flags.c_contiguous else a.copy(order="C")


def _to_msgpack(x: Any) -> Any:
    """Convert numpy scalars (common in metrics) to Python values; refuse arrays in the body."""
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, (tuple, set, frozenset)):
        return list(x)
    if isinstance(x, np.ndarray) or type(x).__module__.startswith("torch"):
        raise TypeError(f"a {type(x).__name__} cannot travel in a body: send it as a tensor")
    raise TypeError(f"a {type(x).__name__} cannot travel in a body")


def error_message(id_: int, op: str, error: WorkerError) -> Message:
    """The `error` message for `error`, addressed to request `id_` (0 when unknown)."""
    return Message(id=id_, kind="error", op=op, body=error.to_body())
