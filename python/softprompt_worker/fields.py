"""Type checks for specs that arrive from the wire: each field of a dataclass against its annotation.

MessagePack carries any value in any field; a dataclass takes it without complaint, and a wrong type
surfaces later as a TypeError deep inside a method (or, for ``trust_remote_code: "false"``, as a truthy
string). ``check_fields`` refuses it up front with an error naming the field:

    check_fields(PromptTuningConfig, {"num_virtual_tokens": "20"})
    # InvalidArgumentError: num_virtual_tokens: expected an integer, got '20'
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from softprompt_worker.errors import InvalidArgumentError

_CHECKS = {
    "int": ("an integer", lambda v: type(v) is int),
    "bool": ("a boolean", lambda v: type(v) is bool),
    "str": ("a string", lambda v: isinstance(v, str)),
    "float": ("a finite number", lambda v: type(v) in (int, float) and math.isfinite(v)),
    "dict": ("a map", lambda v: isinstance(v, dict)),
    "list": ("a list", lambda v: isinstance(v, list)),
}


def check_fields(cls: Any, raw: dict[str, Any], prefix: str = "") -> None:
    """InvalidArgumentError for the first value in ``raw`` whose type does not fit ``cls``'s annotation
    (``int``, ``bool``, ``str``, ``float``, ``dict[...]``, ``list[...]``, each optionally ``| None``).
    Unknown names are left to the caller; ranges and enums to the class's own validation."""
    annotations = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    for name, value in raw.items():
        annotation = annotations.get(name)
        if annotation is None:
            continue
        parts = [p.strip() for p in annotation.split("|")]
        if value is None:
            if "None" not in parts:
                raise InvalidArgumentError(f"{prefix}{name}: must not be null")
            continue
        base = next((p.split("[")[0] for p in parts if p != "None"), "")
        if base in _CHECKS:
            what, ok = _CHECKS[base]
            if not ok(value):
                raise InvalidArgumentError(f"{prefix}{name}: expected {what}, got {value!r:.60}")


def check_job_shape(body: dict[str, Any]) -> None:
    """The parts of a ``train`` (or ``plan``) body every later step relies on: ``method`` and ``task`` name
    something, and ``method_config`` / ``task_options`` / ``training`` are maps when given."""
    for name in ("method", "task"):
        if not isinstance(body.get(name), str):
            raise InvalidArgumentError(f"{name}: expected a string, got {body.get(name)!r:.40}")
    for name in ("method_config", "task_options", "training"):
        if not isinstance(body.get(name) or {}, dict):
            raise InvalidArgumentError(f"{name}: expected a map, got {type(body.get(name)).__name__}")
