from softprompt_worker._proto.softprompt.v1 import tensor_pb2 as _tensor_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BaseModel(_message.Message):
    __slots__ = ("name_or_path", "model_type", "fingerprint", "hidden_size", "num_layers", "model_spec_json")
    NAME_OR_PATH_FIELD_NUMBER: _ClassVar[int]
    MODEL_TYPE_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_SIZE_FIELD_NUMBER: _ClassVar[int]
    NUM_LAYERS_FIELD_NUMBER: _ClassVar[int]
    MODEL_SPEC_JSON_FIELD_NUMBER: _ClassVar[int]
    name_or_path: str
    model_type: str
    fingerprint: str
    hidden_size: int
    num_layers: int
    model_spec_json: str
    def __init__(self, name_or_path: _Optional[str] = ..., model_type: _Optional[str] = ..., fingerprint: _Optional[str] = ..., hidden_size: _Optional[int] = ..., num_layers: _Optional[int] = ..., model_spec_json: _Optional[str] = ...) -> None: ...

class LibraryVersions(_message.Message):
    __slots__ = ("softprompt", "torch", "transformers", "peft")
    SOFTPROMPT_FIELD_NUMBER: _ClassVar[int]
    TORCH_FIELD_NUMBER: _ClassVar[int]
    TRANSFORMERS_FIELD_NUMBER: _ClassVar[int]
    PEFT_FIELD_NUMBER: _ClassVar[int]
    softprompt: str
    torch: str
    transformers: str
    peft: str
    def __init__(self, softprompt: _Optional[str] = ..., torch: _Optional[str] = ..., transformers: _Optional[str] = ..., peft: _Optional[str] = ...) -> None: ...

class Checkpoint(_message.Message):
    __slots__ = ("format_version", "method", "method_config_json", "base_model", "tensors", "training_state", "training_state_json", "step", "metrics", "versions", "created_unix_ms", "content_sha256")
    class TensorsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _tensor_pb2.Tensor
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ...) -> None: ...
    class TrainingStateEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _tensor_pb2.Tensor
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ...) -> None: ...
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    FORMAT_VERSION_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    METHOD_CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    TRAINING_STATE_FIELD_NUMBER: _ClassVar[int]
    TRAINING_STATE_JSON_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    format_version: int
    method: str
    method_config_json: str
    base_model: BaseModel
    tensors: _containers.MessageMap[str, _tensor_pb2.Tensor]
    training_state: _containers.MessageMap[str, _tensor_pb2.Tensor]
    training_state_json: str
    step: int
    metrics: _containers.ScalarMap[str, float]
    versions: LibraryVersions
    created_unix_ms: int
    content_sha256: str
    def __init__(self, format_version: _Optional[int] = ..., method: _Optional[str] = ..., method_config_json: _Optional[str] = ..., base_model: _Optional[_Union[BaseModel, _Mapping]] = ..., tensors: _Optional[_Mapping[str, _tensor_pb2.Tensor]] = ..., training_state: _Optional[_Mapping[str, _tensor_pb2.Tensor]] = ..., training_state_json: _Optional[str] = ..., step: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ..., versions: _Optional[_Union[LibraryVersions, _Mapping]] = ..., created_unix_ms: _Optional[int] = ..., content_sha256: _Optional[str] = ...) -> None: ...
