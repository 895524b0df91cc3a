"""The fields of specs that arrive from the wire: declared once with ``option`` (default, bounds, choices),
checked here against their annotation and those bounds, and exported from the same declaration to JSON
Schema and the SDK's zod schemas (``json_schema.py``, ``scripts/gen-schema.py``, docs/schema.md).

    seed: int = option(0, ge=0, le=MAX_SEED)
    init: str = option("vocab", choices=("vocab", "text", "random"))

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

MISSING: Any = dataclasses.MISSING


def option(default: Any = MISSING, *, factory: Any = MISSING, ge: float | None = None, gt: float | None = None,
           le: float | None = None, lt: float | None = None, choices: tuple[str, ...] | None = None,
           non_empty: bool = False, max_length: int | None = None, items_non_empty: bool = False,
           message: str | None = None, doc: str | None = None, sdk: dict[str, Any] | None = None) -> Any:
    """A dataclass field with the metadata both validators derive from (docs/schema.md):

    - bounds: ``ge``/``gt`` below, ``le``/``lt`` above (limits from ``limits.py``);
    - ``choices`` of a string; ``non_empty`` / ``max_length`` of a string; ``items_non_empty`` of a list of
      strings;
    - ``message="range"``: one message naming the whole interval (``must be in [0, 1)``, ``must be an
      integer in 1..4096``) instead of one per bound;
    - ``doc``, else the class docstring's ``Attributes:`` / ``Args:`` entry;
    - ``sdk``: how the SDK's schema differs, e.g. ``{"optional": True}`` where it leaves the default to the
      worker.
    """
    meta = dict(ge=ge, gt=gt, le=le, lt=lt, choices=choices, non_empty=non_empty or None, max_length=max_length,
                items_non_empty=items_non_empty or None, message=message, doc=doc, sdk=sdk)
    return dataclasses.field(default=default, default_factory=factory,
                             metadata={k: v for k, v in meta.items() if v is not None})


def check_values(obj: Any, prefix: str = "") -> None:
    """InvalidArgumentError for the first field of the dataclass instance ``obj`` outside its ``option``
    bounds or choices (None passes: ``check_fields`` decides where null is allowed)."""
    for f in dataclasses.fields(obj):
        meta, value, name = f.metadata, getattr(obj, f.name), f"{prefix}{f.name}"
        if value is None or not meta:
            continue
        if "choices" in meta and value not in meta["choices"]:
            raise InvalidArgumentError(f"{name}: {value!r:.40} is not one of {', '.join(meta['choices'])}")
        if meta.get("non_empty") and not value:
            raise InvalidArgumentError(f"{name}: must not be empty")
        if meta.get("items_non_empty") and not all(isinstance(s, str) and s for s in value):
            raise InvalidArgumentError(f"{name}: must be a list of non-empty strings, got {value!r:.80}")
        if "max_length" in meta and len(value) > meta["max_length"]:
            raise InvalidArgumentError(f"{name}: longer than {meta['max_length']} characters: {value!r:.70}")
        if meta.get("message") == "range" and not in_range(meta, value):
            interval = range_text(meta, integer=str(f.type).startswith("int"))
            raise InvalidArgumentError(f"{name}: must be {interval}, got {value!r}")
        if "gt" in meta and not value > meta["gt"]:
            raise InvalidArgumentError(f"{name}: must be > {meta['gt']}, got {value!r}")
        if "ge" in meta and not value >= meta["ge"]:
            raise InvalidArgumentError(f"{name}: must be >= {meta['ge']}, got {value!r}")
        if "le" in meta and not value <= meta["le"]:
            raise InvalidArgumentError(f"{name}: {value!r} is over the limit of {meta['le']} (limits.py)")
        if "lt" in meta and not value < meta["lt"]:
            raise InvalidArgumentError(f"{name}: must be < {meta['lt']}, got {value!r}")

_CHECKS = {
    "int": ("an integer", lambda v: type(v) is int),
    "bool": ("a boolean", lambda v: type(v) is bool),
    "str": ("a string", lambda v: isinstance(v, str)),
    "float": ("a finite number", lambda v: type(v) in (int, float) and math.isfinite(v)),
    "dict": ("a map", lambda v: isinstance(v, dict)),
    "list": ("a list", lambda v: isinstance(v, list)),
}


def in_range(meta: Any, value: Any) -> bool:
    """``value`` is within the bounds of ``meta`` (``ge``/``gt``/``le``/``lt``)."""
    return (("ge" not in meta or value >= meta["ge"]) and ("gt" not in meta or value > meta["gt"])
            and ("le" not in meta or value <= meta["le"]) and ("lt" not in meta or value < meta["lt"]))


def range_text(meta: Any, integer: bool) -> str:
    """``in [0, 1)`` / ``in (0, 1]`` for numbers, ``an integer in 1..4096`` for integers (inclusive bounds)."""
    if integer:
        return f"an integer in {meta['ge']}..{meta['le']}"
    low = f"[{meta['ge']}" if "ge" in meta else f"({meta['gt']}"
    high = f"{meta['le']}]" if "le" in meta else f"{meta['lt']})"
    return f"in {low}, {high}"


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
