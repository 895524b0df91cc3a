"""errors.py: one class per ErrorCode, wire bodies, exception mapping."""

from __future__ import annotations

import pytest

from softprompt_worker import errors
from softprompt_worker._proto.softprompt.v1 import errors_pb2


def test_every_enum_value_has_exactly_one_class() -> None:
    values = [v for v in errors_pb2.ErrorCode.values() if v != errors_pb2.ERROR_CODE_UNSPECIFIED]
    codes = [errors.code_name(v) for v in values]
    assert sorted(errors.ERROR_CLASSES) == sorted(codes)
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.WorkerError)]
    for code in codes:
        owners = [c for c in classes if c.code == code and c is not errors.WorkerError]
        assert owners == [errors.ERROR_CLASSES[code]], code


def test_codes_are_lower_case_enum_names() -> None:
    assert errors.MalformedMessageError.code == "malformed_message"
    assert errors.ProtocolVersionMismatchError.code == "protocol_version_mismatch"
    assert errors.BusyError.code == "busy"
    assert errors.WorkerError.code == "internal"


def test_duplicate_code_is_rejected() -> None:
    with pytest.raises(TypeError, match="already belongs"):

        class Again(errors.WorkerError, enum_value=errors_pb2.ERROR_CODE_BUSY):
            pass


def test_to_body() -> None:
    assert errors.NotFoundError("no job 7").to_body() == {"code": "not_found", "message": "no job 7"}
    body = errors.TooLargeError("big", details={"limit": 3}).to_body()
    assert body == {"code": "too_large", "message": "big", "details": {"limit": 3}}


def test_from_exception_maps_bugs_to_internal() -> None:
    try:
        raise KeyError("x")
    except KeyError as exc:
        err = errors.from_exception(exc)
    assert err.code == "internal"
    assert err.message == "KeyError: 'x'"
    assert err.details["type"] == "KeyError"
    assert "Traceback" in err.details["traceback"]
    same = errors.InvalidArgumentError("bad")
    assert errors.from_exception(same) is same


def test_from_exception_maps_torch_oom() -> None:
    torch = pytest.importorskip("torch")
    err = errors.from_exception(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert err.code == "out_of_memory"
    assert "gradient accumulation" in err.message
