from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_CODE_UNSPECIFIED: _ClassVar[ErrorCode]
    ERROR_CODE_MALFORMED_MESSAGE: _ClassVar[ErrorCode]
    ERROR_CODE_PROTOCOL_VERSION_MISMATCH: _ClassVar[ErrorCode]
    ERROR_CODE_UNKNOWN_OP: _ClassVar[ErrorCode]
    ERROR_CODE_INVALID_ARGUMENT: _ClassVar[ErrorCode]
    ERROR_CODE_NOT_FOUND: _ClassVar[ErrorCode]
    ERROR_CODE_TOO_LARGE: _ClassVar[ErrorCode]
    ERROR_CODE_CANCELLED: _ClassVar[ErrorCode]
    ERROR_CODE_OUT_OF_MEMORY: _ClassVar[ErrorCode]
    ERROR_CODE_CHECKPOINT_INVALID: _ClassVar[ErrorCode]
    ERROR_CODE_DEPENDENCY_MISSING: _ClassVar[ErrorCode]
    ERROR_CODE_BUSY: _ClassVar[ErrorCode]
    ERROR_CODE_INTERNAL: _ClassVar[ErrorCode]
    ERROR_CODE_STORAGE: _ClassVar[ErrorCode]
ERROR_CODE_UNSPECIFIED: ErrorCode
ERROR_CODE_MALFORMED_MESSAGE: ErrorCode
ERROR_CODE_PROTOCOL_VERSION_MISMATCH: ErrorCode
ERROR_CODE_UNKNOWN_OP: ErrorCode
ERROR_CODE_INVALID_ARGUMENT: ErrorCode
ERROR_CODE_NOT_FOUND: ErrorCode
ERROR_CODE_TOO_LARGE: ErrorCode
ERROR_CODE_CANCELLED: ErrorCode
ERROR_CODE_OUT_OF_MEMORY: ErrorCode
ERROR_CODE_CHECKPOINT_INVALID: ErrorCode
ERROR_CODE_DEPENDENCY_MISSING: ErrorCode
ERROR_CODE_BUSY: ErrorCode
ERROR_CODE_INTERNAL: ErrorCode
ERROR_CODE_STORAGE: ErrorCode
