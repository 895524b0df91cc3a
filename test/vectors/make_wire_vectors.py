"""Generate `wire.json`: the shared byte-level vectors of proto/WIRE.md for the Python and TS suites.

Run from the repo root: `.venv/bin/python test/vectors/make_wire_vectors.py` (rewrites the file;
`test/python/test_protocol_vectors.py` fails when the committed file is stale).

The frames are built here with plain msgpack + numpy, independently of `softprompt_worker.serving.protocol`,
so the vectors pin the format rather than one implementation of it. Encoding rules both encoders
must follow to reproduce `frames_hex` byte for byte:
- header keys in the order v, id, kind, op, body, tensors; descriptor keys in the order name, dtype, shape;
- the smallest MessagePack encoding of every integer; strings as str (never bin);
- floats as float64; body maps keep the key order listed in the vector.

Valid case:   {"name", "frames_hex": [hex, ...], "header": {...}, "tensors": [{"name", "dtype", "shape", "data_hex"}]}
Invalid case: {"name", "frames_hex": [hex, ...], "error_code": str, "id": int, "op": str}
  (`id`/`op`: how the worker addresses its error reply: 0 / "" when they could not be read.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

OUT = Path(__file__).with_name("wire.json")
NP = {"f32": "<f4", "f16": "<f2", "bf16": "<u2", "f64": "<f8", "i64": "<i8", "i32": "<i4",
      "i16": "<i2", "i8": "i1", "u8": "u1", "bool": "?"}


def header(id_: int, kind: str, op: str, body: dict[str, Any], tensors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"v": 1, "id": id_, "kind": kind, "op": op, "body": body, "tensors": tensors}


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def valid(name: str, h: dict[str, Any], tensors: list[tuple[str, str, list[int], bytes]] = ()) -> dict[str, Any]:
    h = dict(h, tensors=[{"name": n, "dtype": d, "shape": s} for n, d, s, _ in tensors])
    frames = [pack(h), *(data for *_, data in tensors)]
    return {"name": name, "frames_hex": [f.hex() for f in frames], "header": h,
            "tensors": [{"name": n, "dtype": d, "shape": s, "data_hex": data.hex()} for n, d, s, data in tensors]}


def arr(dtype: str, values: Any) -> bytes:
    return np.asarray(values, dtype=NP[dtype]).tobytes()


def invalid(name: str, frames: list[bytes], code: str, id_: int = 0, op: str = "") -> dict[str, Any]:
    return {"name": name, "frames_hex": [f.hex() for f in frames], "error_code": code, "id": id_, "op": op}


def valid_cases() -> list[dict[str, Any]]:
    bf16_bits = [0x3F80, 0xC020, 0x7FC0, 0x0001, 0x8000]  # 1.0, -2.5, NaN, smallest subnormal, -0.0
    return [
        valid("ping request", header(1, "request", "ping", {}, [])),
        valid("hello request", header(2, "request", "hello", {"protocol": 1, "client": "softprompt-ts/0.1.0"}, [])),
        valid("reply with f32 bf16 i64 bool tensors", header(3, "reply", "echo", {}, []), [
            ("x", "f32", [2, 3], arr("f32", [[1.0, -2.0, 0.5], [3.25, float("inf"), -0.0]])),
            ("h", "bf16", [5], arr("bf16", bf16_bits)),
            ("ids", "i64", [3], arr("i64", [0, -1, 2**53 + 1])),
            ("mask", "bool", [2, 2], arr("bool", [[True, False], [False, True]])),
        ]),
        valid("scalar tensor (shape [])", header(4, "reply", "echo", {}, []), [("s", "f64", [], arr("f64", 3.141592653589793))]),
        valid("zero-size tensor", header(5, "reply", "echo", {}, []), [("empty", "f32", [0, 4], b"")]),
        valid("every other dtype", header(6, "request", "echo", {}, []), [
            ("a", "f16", [2], arr("f16", [1.0, -65504.0])),
            ("b", "i32", [2], arr("i32", [-(2**31), 2**31 - 1])),
            ("c", "i16", [2], arr("i16", [-(2**15), 7])),
            ("d", "i8", [3], arr("i8", [-128, 0, 127])),
            ("e", "u8", [3], arr("u8", [0, 128, 255])),
        ]),
        valid("event with numbers of every width", header(7, "event", "train", {
            "step": 3, "loss": 0.25, "lr": 0.001, "u8": 200, "u16": 60000, "u32": 4_000_000_000,
            "u64": 2**53 - 1, "neg": -1, "i8": -100, "i16": -30000, "i32": -2_000_000_000,
            "nil": None, "yes": True, "list": [1, "two", [3.5]], "map": {"k": "v"},
        }, [])),
        valid("error reply", header(8, "error", "load_model", {"code": "not_found", "message": "no model 'x'",
                                                              "details": {"path": "/tmp/x"}}, [])),
        valid("error about an unreadable message (id 0)", header(0, "error", "", {
            "code": "malformed_message", "message": "header is not valid MessagePack"}, [])),
        valid("largest id, unicode and long strings", header(2**53 - 1, "reply", "ping", {
            "text": "héllo ✓ 🚀", "long": "x" * 40, "longer": "y" * 300}, [])),
    ]


def invalid_cases() -> list[dict[str, Any]]:
    ok = header(9, "request", "echo", {}, [{"name": "t", "dtype": "f32", "shape": [2]}])
    two = arr("f32", [1.0, 2.0])

    def with_(**kw: Any) -> bytes:
        return pack({**ok, **kw})

    truncated = pack(ok)[:-3]
    return [
        invalid("not MessagePack", [b"\xc1"], "malformed_message"),
        invalid("truncated header", [truncated, two], "malformed_message"),
        invalid("trailing bytes after the header", [pack(ok) + b"\x00", two], "malformed_message"),
        invalid("header is an array", [pack([1, 9, "request", "ping", {}, []])], "malformed_message"),
        invalid("missing id", [pack({"v": 1, "kind": "request", "op": "ping", "body": {}, "tensors": []})], "malformed_message", 0, "ping"),
        invalid("unknown header field", [pack({**header(10, "request", "ping", {}, []), "extra": 1})], "malformed_message", 10, "ping"),
        invalid("protocol version 2", [pack({**header(11, "request", "ping", {}, []), "v": 2})], "protocol_version_mismatch", 11, "ping"),
        invalid("v is a string", [pack({**header(12, "request", "ping", {}, []), "v": "1"})], "malformed_message", 12, "ping"),
        invalid("id 0", [pack(header(0, "request", "ping", {}, []))], "malformed_message", 0, "ping"),
        invalid("id 2^53", [pack(header(2**53, "request", "ping", {}, []))], "malformed_message", 0, "ping"),
        invalid("negative id", [pack(header(-5, "request", "ping", {}, []))], "malformed_message", 0, "ping"),
        invalid("id is a float", [pack(header(1.0, "request", "ping", {}, []))], "malformed_message", 0, "ping"),
        invalid("unknown kind", [pack(header(13, "bogus", "ping", {}, []))], "malformed_message", 13, "ping"),
        invalid("kind as binary", [pack(header(14, b"request", "ping", {}, []))], "malformed_message", 14, "ping"),
        invalid("op is not a string", [pack(header(15, "request", 7, {}, []))], "malformed_message", 15, ""),
        invalid("body is an array", [pack(header(16, "request", "ping", [], []))], "malformed_message", 16, "ping"),
        invalid("tensors is a map", [pack(header(17, "request", "ping", {}, {}))], "malformed_message", 17, "ping"),
        invalid("missing tensor frame", [pack(ok)], "malformed_message", 9, "echo"),
        invalid("extra frame", [pack(ok), two, b"\x00"], "malformed_message", 9, "echo"),
        invalid("frame length does not match shape", [pack(ok), two[:-1]], "malformed_message", 9, "echo"),
        invalid("unknown dtype", [with_(tensors=[{"name": "t", "dtype": "f128", "shape": [2]}]), two], "malformed_message", 9, "echo"),
        invalid("negative dimension", [with_(tensors=[{"name": "t", "dtype": "f32", "shape": [-2]}]), two], "malformed_message", 9, "echo"),
        invalid("descriptor missing shape", [with_(tensors=[{"name": "t", "dtype": "f32"}]), two], "malformed_message", 9, "echo"),
        invalid("duplicate tensor names", [with_(tensors=[{"name": "t", "dtype": "f32", "shape": [2]}] * 2), two, two], "malformed_message", 9, "echo"),
        invalid("huge declared shape", [with_(tensors=[{"name": "t", "dtype": "f32", "shape": [2**40, 2**40]}]), two], "too_large", 9, "echo"),
    ]


def build() -> str:
    doc = {"protocol": 1, "generator": "test/vectors/make_wire_vectors.py",
           "valid": valid_cases(), "invalid": invalid_cases()}
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUT.write_text(build(), encoding="utf-8")
    sys.stderr.write(f"wrote {OUT}\n")
