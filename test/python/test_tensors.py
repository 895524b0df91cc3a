"""tensors.py: numpy/torch <-> wire and protobuf, bit-exact (bf16 included)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from softprompt_worker.serving.protocol import Message, decode, encode
from softprompt_worker.tensors import (
    tensor_from_proto,
    tensor_to_proto,
    to_numpy,
    to_torch,
    to_wire,
    wire_dtype_of,
)

TORCH_DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int32,
                torch.int16, torch.int8, torch.uint8, torch.bool]


def _random(dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    if dtype.is_floating_point:
        return torch.randn(shape, generator=g).to(dtype)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=g).bool()
    return torch.randint(-100 if dtype != torch.uint8 else 0, 100, shape, generator=g).to(dtype)


def _bits(t: torch.Tensor) -> bytes:
    return to_numpy(t)[1].tobytes()


@pytest.mark.parametrize("dtype", TORCH_DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(), (0, 3), (2, 3, 4)])
def test_torch_wire_round_trip(dtype: torch.dtype, shape: tuple[int, ...]) -> None:
    t = _random(dtype, shape)
    frames = encode(Message(1, "reply", "x", {}, [to_wire("t", t)]))
    wt = decode([bytes(f) for f in frames]).tensors[0]
    back = to_torch(wt.array, wt.dtype)
    assert back.dtype == dtype and tuple(back.shape) == shape
    assert _bits(back) == _bits(t)


@pytest.mark.parametrize("dtype", TORCH_DTYPES, ids=str)
def test_proto_round_trip(dtype: torch.dtype) -> None:
    t = _random(dtype, (3, 5))
    p = tensor_to_proto(t)
    back = tensor_from_proto(p)
    assert back.dtype == dtype and back.shape == t.shape
    assert _bits(back) == _bits(t)
    back.add_(1) if dtype != torch.bool else None  # writable, not a view of the proto bytes


def test_bf16_bits_never_go_through_float() -> None:
    bits = torch.tensor([0x7FC1, 0xFF81 - 0x10000, 0x0001, 0x8000 - 0x10000], dtype=torch.int16)  # NaN payloads, subnormal, -0
    t = bits.view(torch.bfloat16)
    name, array = to_numpy(t)
    assert name == "bf16" and array.dtype == np.uint16
    assert array.view(np.int16).tolist() == bits.tolist()
    assert tensor_from_proto(tensor_to_proto(t)).view(torch.int16).tolist() == bits.tolist()


def test_non_contiguous_and_numpy_inputs() -> None:
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4).T  # (4, 3), non-contiguous
    name, array = to_numpy(t)
    assert array.flags.c_contiguous and array.tolist() == t.tolist()
    assert wire_dtype_of(np.zeros(2, np.int8)) == "i8"
    with pytest.raises(ValueError, match="bf16"):
        wire_dtype_of(np.zeros(2, np.uint16))
    assert to_numpy(np.zeros(2, np.uint16), "bf16")[0] == "bf16"
    with pytest.raises(ValueError, match="no wire dtype"):
        wire_dtype_of(torch.zeros(2, dtype=torch.complex64))


def test_proto_rejects_inconsistent_data() -> None:
    p = tensor_to_proto(torch.zeros(2, 2))
    p.data = p.data[:-1]
    with pytest.raises(ValueError, match="needs 16"):
        tensor_from_proto(p)


def test_zero_d_numpy_stays_zero_d() -> None:
    name, array = to_numpy(np.array(2.5, np.float32))
    assert (name, array.shape) == ("f32", ())
    assert to_numpy(np.asfortranarray(np.ones((2, 3))))[1].flags.c_contiguous
