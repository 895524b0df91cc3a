"""Tensor conversions: numpy/torch <-> wire tensors, and protobuf `Tensor` <-> torch/numpy.

bf16 never goes through a float conversion: on the wire and in protobuf it is the raw 16 bits, in numpy
a `uint16` array of those bits, in torch a `bfloat16` tensor viewing the same bytes. torch is imported
lazily, so the socket loop can use the numpy half without it.

    >>> t = tensor_from_proto(tensor_to_proto(torch.ones(2, 3, dtype=torch.bfloat16)))  # bit-exact
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from softprompt_worker._proto.softprompt.v1 import tensor_pb2
from softprompt_worker.serving.protocol import NUMPY_DTYPES, WireTensor, c_contiguous

if TYPE_CHECKING:
    import torch

# numpy dtype -> wire dtype, for arrays that carry no explicit wire dtype (uint16 is not one: bf16 bits
# must be named).
_FROM_NUMPY = {dt.newbyteorder("<") if dt.itemsize > 1 else dt: name
               for name, dt in NUMPY_DTYPES.items() if name != "bf16"}


def _torch_dtypes() -> dict[str, torch.dtype]:
    import torch

    return {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16, "f64": torch.float64,
            "i64": torch.int64, "i32": torch.int32, "i16": torch.int16, "i8": torch.int8,
            "u8": torch.uint8, "bool": torch.bool}


def wire_dtype_of(value: Any) -> str:
    """The wire dtype name of a numpy array or torch tensor; ValueError if it has none."""
    if isinstance(value, np.ndarray):
        dt = value.dtype.newbyteorder("<") if value.dtype.itemsize > 1 else value.dtype
        if dt not in _FROM_NUMPY:
            hint = " (bf16 bits as uint16 must be passed with dtype='bf16')" if dt == np.uint16 else ""
            raise ValueError(f"numpy dtype {value.dtype} has no wire dtype{hint}")
        return _FROM_NUMPY[dt]
    for name, tdt in _torch_dtypes().items():
        if value.dtype == tdt:
            return name
    raise ValueError(f"torch dtype {value.dtype} has no wire dtype; use one of {' '.join(NUMPY_DTYPES)}")


def to_numpy(value: Any, dtype: str | None = None) -> tuple[str, np.ndarray]:
    """(wire dtype, C-contiguous little-endian numpy array) for a numpy array or torch tensor.

    A torch tensor is detached and moved to the CPU (a copy only if it is not there already); bf16
    becomes its uint16 bits. `dtype` names the wire dtype of a numpy array where numpy cannot (bf16).
    """
    if isinstance(value, np.ndarray):
        name = dtype or wire_dtype_of(value)
        if value.dtype.itemsize != NUMPY_DTYPES[name].itemsize:
            raise ValueError(f"numpy dtype {value.dtype} cannot carry wire dtype {name}")
        return name, c_contiguous(value.view(NUMPY_DTYPES[name]) if name == "bf16" else value)
    import torch

    if not isinstance(value, torch.Tensor):
        raise TypeError(f"expected a numpy array or torch tensor, got {type(value).__name__}")
    name = wire_dtype_of(value)
    t = value.detach().to("cpu").contiguous()
    if name == "bf16":
        return name, t.view(torch.int16).numpy().view(np.uint16)
    return name, t.numpy()


def to_wire(name: str, value: Any, dtype: str | None = None) -> WireTensor:
    """A `WireTensor` named `name` for a numpy array or torch tensor (see `to_numpy`)."""
    wire_dtype, array = to_numpy(value, dtype)
    return WireTensor(name=name, dtype=wire_dtype, shape=tuple(array.shape), array=array)


def to_torch(array: np.ndarray, dtype: str) -> torch.Tensor:
    """A CPU torch tensor sharing memory with `array` (wire dtype `dtype`; bf16 from uint16 bits).

    Arrays decoded from the wire are read-only views of the message: the tensor shares that memory and
    must not be written in place (`.clone()` or `.to(device)` first if you need to).
    """
    import torch

    if not array.flags.aligned:  # a frame at an odd address: copy rather than hand torch unaligned memory
        array = array.copy()
    np_view = array.view(np.int16) if dtype == "bf16" else array
    with warnings.catch_warnings():  # torch warns about read-only arrays; the contract above covers it
        warnings.simplefilter("ignore", UserWarning)
        t = torch.from_numpy(np_view)
    return t.view(torch.bfloat16) if dtype == "bf16" else t


# ------------------------------------------------------------------------------------------ protobuf

_PROTO_DTYPE = {name: tensor_pb2.DType.Value(f"DTYPE_{name.upper()}") for name in NUMPY_DTYPES}
_PROTO_NAME = {v: k for k, v in _PROTO_DTYPE.items()}


def tensor_to_proto(value: Any, dtype: str | None = None) -> tensor_pb2.Tensor:
    """A protobuf `Tensor` holding a copy of a torch tensor or numpy array (bit-exact, bf16 included)."""
    name, array = to_numpy(value, dtype)
    return tensor_pb2.Tensor(dtype=_PROTO_DTYPE[name], shape=list(array.shape), data=array.tobytes())


def tensor_from_proto_numpy(p: tensor_pb2.Tensor) -> tuple[str, np.ndarray]:
    """(wire dtype, writable numpy array) for a protobuf `Tensor`; bf16 as uint16 bits.
    Raises ValueError when the dtype is unknown or `data` does not match the shape."""
    if p.dtype not in _PROTO_NAME:
        raise ValueError(f"tensor dtype {tensor_pb2.DType.Name(p.dtype) if p.dtype in tensor_pb2.DType.values() else p.dtype} is not supported")
    name = _PROTO_NAME[p.dtype]
    np_dtype = NUMPY_DTYPES[name]
    shape = list(p.shape)
    if any(d < 0 for d in shape):
        raise ValueError(f"tensor shape {shape} has a negative dimension")
    need = math.prod(shape) * np_dtype.itemsize
    if len(p.data) != need:
        raise ValueError(f"tensor data is {len(p.data)} bytes; shape {shape} of {name} needs {need}")
    return name, np.frombuffer(p.data, dtype=np_dtype).reshape(shape).copy()


def tensor_from_proto(p: tensor_pb2.Tensor) -> torch.Tensor:
    """A writable CPU torch tensor for a protobuf `Tensor` (bit-exact; bf16 stays bf16)."""
    name, array = tensor_from_proto_numpy(p)
    return to_torch(array, name)
