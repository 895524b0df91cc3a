"""Typed worker errors: one root, one class per `ErrorCode` of `proto/softprompt/v1/errors.proto`.

A handler raises a `WorkerError` subclass for an expected failure; the server turns it into an
`error` message whose body is `err.to_body()`. The wire code of each class is derived from the
generated enum (lower-case name without `ERROR_CODE_`), so the proto is the one source of truth:

    >>> NotFoundError("no job 7").to_body()
    {'code': 'not_found', 'message': 'no job 7'}
"""

from __future__ import annotations

from typing import Any, ClassVar

from softprompt_worker._proto.softprompt.v1 import errors_pb2

_PREFIX = "ERROR_CODE_"


def code_name(value: int) -> str:
    """Wire spelling of an `ErrorCode` value: `ERROR_CODE_NOT_FOUND` (5) -> `"not_found"`."""
    return errors_pb2.ErrorCode.Name(value)[len(_PREFIX):].lower()


#: Every wire code except `unspecified`, in enum order.
ERROR_CODES: tuple[str, ...] = tuple(
    code_name(v) for v in errors_pb2.ErrorCode.values() if v != errors_pb2.ERROR_CODE_UNSPECIFIED
)

#: Wire code -> the one class that carries it (filled by `WorkerError.__init_subclass__`).
ERROR_CLASSES: dict[str, type[WorkerError]] = {}


class WorkerError(Exception):
    """Root of every error the worker reports on the wire.

    Args:
        message: human-readable text; say what was wrong and, where there is one, the limit.
        details: optional MessagePack-able map sent as `body.details`.

    Subclasses bind their code with a class keyword: `class X(WorkerError, enum_value=...)`.
    `WorkerError` itself carries `internal`.
    """

    code: ClassVar[str] = code_name(errors_pb2.ERROR_CODE_INTERNAL)

    def __init_subclass__(cls, *, enum_value: int | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if enum_value is None:
            return  # a further subclass of a coded class keeps its parent's code
        code = code_name(enum_value)
        if code in ERROR_CLASSES:
            raise TypeError(f"error code {code!r} already belongs to {ERROR_CLASSES[code].__name__}")
        cls.code = code
        ERROR_CLASSES[code] = cls

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_body(self) -> dict[str, Any]:
        """The `error` body: `{"code", "message", "details"?}`."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class MalformedMessageError(WorkerError, enum_value=errors_pb2.ERROR_CODE_MALFORMED_MESSAGE):
    """The message could not be decoded: bad MessagePack, missing/mistyped header field, bad frames."""


class ProtocolVersionMismatchError(WorkerError, enum_value=errors_pb2.ERROR_CODE_PROTOCOL_VERSION_MISMATCH):
    """The client speaks another protocol version than this worker."""


class UnknownOpError(WorkerError, enum_value=errors_pb2.ERROR_CODE_UNKNOWN_OP):
    """No operation of that name is registered."""


class InvalidArgumentError(WorkerError, enum_value=errors_pb2.ERROR_CODE_INVALID_ARGUMENT):
    """The body did not validate (wrong type, missing field, value out of range)."""


class NotFoundError(WorkerError, enum_value=errors_pb2.ERROR_CODE_NOT_FOUND):
    """A named job, prompt, checkpoint or file does not exist."""


class TooLargeError(WorkerError, enum_value=errors_pb2.ERROR_CODE_TOO_LARGE):
    """A message, tensor or sequence exceeds the worker's limit."""


class CancelledError(WorkerError, enum_value=errors_pb2.ERROR_CODE_CANCELLED):
    """The client cancelled the request."""


class OutOfMemoryError(WorkerError, enum_value=errors_pb2.ERROR_CODE_OUT_OF_MEMORY):
    """The device ran out of memory."""


class CheckpointInvalidError(WorkerError, enum_value=errors_pb2.ERROR_CODE_CHECKPOINT_INVALID):
    """A checkpoint failed verification (hash mismatch, wrong base model, unknown format)."""


class DependencyMissingError(WorkerError, enum_value=errors_pb2.ERROR_CODE_DEPENDENCY_MISSING):
    """A required Python package is missing or too old."""


class BusyError(WorkerError, enum_value=errors_pb2.ERROR_CODE_BUSY):
    """The worker refuses more queued work (backpressure)."""


class InternalError(WorkerError, enum_value=errors_pb2.ERROR_CODE_INTERNAL):
    """A bug: an unexpected exception, reported with its type and text."""


class StorageError(WorkerError, enum_value=errors_pb2.ERROR_CODE_STORAGE):
    """Writing to disk failed (no space left, a file-size limit, a read-only or unwritable directory).

    The message names the file and the reason; ``details`` carry ``path`` and ``errno`` (``"ENOSPC"``).
    """

    @classmethod
    def from_os_error(cls, what: str, path: object, exc: OSError, *, hint: str = "") -> "StorageError":
        """``StorageError`` for an ``OSError`` raised while writing ``what`` at ``path``."""
        import errno as errno_names

        name = errno_names.errorcode.get(exc.errno or 0, "EIO")
        reason = exc.strerror or str(exc)
        return cls(f"{what}: cannot write {str(path)!r}: {reason} ({name}){'; ' + hint if hint else ''}",
                   details={"path": str(path), "errno": name})


OOM_ADVICE = "reduce batch size or use gradient accumulation"


def from_exception(exc: BaseException) -> WorkerError:
    """Map any exception to the `WorkerError` that goes on the wire.

    `WorkerError`s pass through; a torch/CUDA out-of-memory becomes `OutOfMemoryError` with advice;
    anything else becomes `InternalError` carrying the exception's type, text and traceback.
    """
    import traceback

    if isinstance(exc, WorkerError):
        return exc
    if _is_oom(exc):
        return OutOfMemoryError(f"device out of memory: {exc}; {OOM_ADVICE}", details={"advice": OOM_ADVICE})
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    name = type(exc).__qualname__
    return InternalError(f"{name}: {exc}", details={"type": name, "traceback": tb})


def _is_oom(exc: BaseException) -> bool:
    # No torch import here: match by type name so the socket loop stays free of ML imports.
    return any(t.__name__ == "OutOfMemoryError" and t.__module__.startswith("torch") for t in type(exc).__mro__)
