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
import functools
import math
import re
import types
import typing
from typing import Any

from softprompt_worker.errors import InvalidArgumentError

MISSING: Any = dataclasses.MISSING


def option(default: Any = MISSING, *, factory: Any = MISSING, ge: float | None = None, gt: float | None = None,
           le: float | None = None, lt: float | None = None, choices: tuple[str, ...] | None = None,
           non_empty: bool = False, max_length: int | None = None, items_non_empty: bool = False,
           min_items: int | None = None, max_items: int | None = None, items_gt: float | None = None,
           pattern: str | None = None, ref: str | None = None, errors: dict[str, str] | None = None,
           message: str | None = None, absent: bool = False, nan: bool = False, doc: str | None = None,
           sdk: dict[str, Any] | None = None) -> Any:
    """A dataclass field with the metadata both validators derive from (docs/schema.md):

    - bounds: ``ge``/``gt`` below, ``le``/``lt`` above (limits from ``limits.py``);
    - ``choices`` of a string, or of each item of a list of strings; ``non_empty`` / ``max_length`` /
      ``pattern`` (a regex it must contain) of a string; ``items_non_empty`` (each item a non-empty string
      or null) / ``items_gt`` of a list;
      ``min_items`` / ``max_items`` of a list or map;
    - ``errors``: the message of a check, keyed by its option name (``non_empty``, ``pattern``,
      ``min_items``, ``max_items``, ``items_non_empty``), the same on both sides:
      ``texts: expected at least one string``;
    - ``ref``: the field is the spec of another schema (``"model"``: ``ModelSpec``), passed on as its raw
      map and validated where it is used; or, in a reply, a part with a schema of its own that several
      replies share (``"train_reply_summary"``); on a list, each item;
    - ``message="range"``: one message naming the whole interval (``must be in [0, 1)``, ``must be an
      integer in 1..4096``) instead of one per bound;
    - replies only: ``absent``: None is left out of the body (``to_body``) instead of sent as null, a key
      present only sometimes; ``nan``: a float (or each float of a list or map) may be NaN or infinite,
      a metric of a run that went wrong, which the SDK then decodes as it is;
    - ``doc``, else the class docstring's ``Attributes:`` / ``Args:`` entry;
    - ``sdk``: how the SDK's schema differs, e.g. ``{"optional": True}`` where it leaves the default to the
      worker.
    """
    meta = dict(ge=ge, gt=gt, le=le, lt=lt, choices=choices, non_empty=non_empty or None, max_length=max_length,
                items_non_empty=items_non_empty or None, min_items=min_items, max_items=max_items, items_gt=items_gt,
                pattern=pattern, ref=ref, errors=errors, message=message, absent=absent or None, nan=nan or None,
                doc=doc, sdk=sdk)
    return dataclasses.field(default=default, default_factory=factory,
                             metadata={k: v for k, v in meta.items() if v is not None})


def check_values(obj: Any, prefix: str = "") -> None:
    """InvalidArgumentError for the first field of the dataclass instance ``obj`` outside its ``option``
    bounds or choices (None passes: ``check_fields`` decides where null is allowed)."""
    for f in dataclasses.fields(obj):
        meta, value, name = f.metadata, getattr(obj, f.name), f"{prefix}{f.name}"
        if value is None or not meta:
            continue
        items = enumerate(value) if isinstance(value, list) else [(None, value)]  # a list: each item
        bad = next(((i, v) for i, v in items if v not in meta["choices"]), None) if "choices" in meta else None
        if bad is not None:
            at = name if bad[0] is None else f"{name}[{bad[0]}]"
            raise InvalidArgumentError(f"{at}: {bad[1]!r:.40} is not one of {', '.join(meta['choices'])}")
        said = meta.get("errors", {})
        if meta.get("non_empty") and not value:
            raise InvalidArgumentError(f"{name}: {said.get('non_empty', 'must not be empty')}")
        if "pattern" in meta and not re.search(meta["pattern"], value):
            raise InvalidArgumentError(f"{name}: {said.get('pattern', 'must match ' + meta['pattern'])}, got {value!r:.40}")
        if "min_items" in meta and len(value) < meta["min_items"]:
            default = f"expected at least {meta['min_items']} entries"
            raise InvalidArgumentError(f"{name}: {said.get('min_items', default)}, got {len(value)}")
        if "max_items" in meta and len(value) > meta["max_items"]:
            default = f"expected at most {meta['max_items']} entries"
            raise InvalidArgumentError(f"{name}: {said.get('max_items', default)}, got {len(value)}")
        bad = next((i for i, s in enumerate(value) if s is not None and not (isinstance(s, str) and s)), None) \
            if meta.get("items_non_empty") else None
        if bad is not None and "items_non_empty" in said:
            raise InvalidArgumentError(f"{name}[{bad}]: {said['items_non_empty']}, got {value[bad]!r:.40}")
        if bad is not None:
            raise InvalidArgumentError(f"{name}: must be a list of non-empty strings, got {value!r:.80}")
        if "items_gt" in meta and not all(v > meta["items_gt"] for v in value):
            raise InvalidArgumentError(f"{name}: each must be > {meta['items_gt']}, got {value!r:.80}")
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
    "tuple": ("a list", lambda v: isinstance(v, list)),
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
    (``int``, ``bool``, ``str``, ``float``, ``dict[...]``, ``list[...]``, ``tuple[...]``, each optionally
    ``| None``), items and map values included (``texts[1]: expected a string, got 3``). Unknown names are
    left to the caller; ranges and enums to ``check_values``; nested dataclasses to ``parse``."""
    hints = _hints(cls)
    for name, value in raw.items():
        if name in hints:
            check_type(hints[name], value, f"{prefix}{name}")


def check_type(hint: Any, value: Any, path: str) -> None:
    """InvalidArgumentError naming ``path`` when ``value`` does not fit the type ``hint``."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return
        hint = next(a for a in args if a is not type(None))
        args = typing.get_args(hint)
    if value is None:
        raise InvalidArgumentError(f"{path}: must not be null")
    origin = typing.get_origin(hint) or hint
    if dataclasses.is_dataclass(origin):
        origin = dict  # its fields are checked by ``parse``
    what, ok = _CHECKS.get(getattr(origin, "__name__", ""), (None, None))
    if ok is not None and not ok(value):
        raise InvalidArgumentError(f"{path}: expected {what}, got {value!r:.60}")
    if origin is tuple and len(value) != len(args):
        raise InvalidArgumentError(f"{path}: expected a list of {len(args)}, got {value!r:.60}")
    if origin in (list, tuple) and args:
        for i, item in enumerate(value):
            check_type(args[i] if origin is tuple else args[0], item, f"{path}[{i}]")
    elif origin is dict and len(args) == 2:
        for key, item in value.items():
            check_type(args[1], item, f"{path}[{key!r:.40}]")


def parse(cls: Any, raw: Any, prefix: str = "") -> Any:
    """An instance of the dataclass ``cls`` from a request body (a map from the wire), or
    InvalidArgumentError naming the first bad field by its wire path (``queries[0].top_k``): types
    (``check_fields``), then required fields, then bounds (``check_values``), then nested dataclasses,
    each parsed the same way. Names ``cls`` does not declare are ignored, as the worker always has."""
    if not isinstance(raw, dict):
        raise InvalidArgumentError(f"{prefix.rstrip('.') or 'body'}: expected a map, got {type(raw).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    known = {k: v for k, v in raw.items() if k in names}
    check_fields(cls, known, prefix)
    for f in dataclasses.fields(cls):
        if f.default is MISSING and f.default_factory is MISSING and known.get(f.name) is None:  # type: ignore[misc]
            raise InvalidArgumentError(f"{prefix}{f.name}: required")
    obj = cls(**known)
    check_values(obj, prefix)
    for f in dataclasses.fields(cls):
        value, nested = getattr(obj, f.name), _nested(_hints(cls)[f.name])
        if nested is not None and isinstance(value, list):
            setattr(obj, f.name, [parse(nested, item, f"{prefix}{f.name}[{i}].") for i, item in enumerate(value)])
        elif nested is not None and isinstance(value, dict):
            setattr(obj, f.name, parse(nested, value, f"{prefix}{f.name}."))
    return obj


@functools.cache
def _hints(cls: Any) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _nested(hint: Any) -> Any:
    """The dataclass of a field typed ``X``, ``X | None`` or ``list[X]``, else None."""
    for arg in (hint, *typing.get_args(hint)):
        if dataclasses.is_dataclass(arg):
            return arg
        if typing.get_origin(arg) is list and dataclasses.is_dataclass(typing.get_args(arg)[0]):
            return typing.get_args(arg)[0]
    return None


def check_unknown(cls: Any, raw: dict[str, Any], where: str) -> None:
    """InvalidArgumentError naming the keys of ``raw`` that ``cls`` does not declare, for a body that
    refuses them (``train``, ``plan``, ``train_many``) where ``parse`` would ignore them."""
    known = sorted(f.name for f in dataclasses.fields(cls))
    unknown = sorted(map(str, set(raw) - set(known)))
    if unknown:
        raise InvalidArgumentError(f"{where}: unknown field(s) {unknown}; known: {known}")


def build(cls: Any, raw: dict[str, Any]) -> Any:
    """The reply dataclass ``cls`` from a map the worker made itself (a lower layer's result), nested
    dataclasses (``X``, ``X | None``, ``list[X]``, ``dict[str, X]``) built the same way. Nothing is
    validated: a missing or unknown key is a TypeError, a bug in the worker rather than in the request."""
    hints = _hints(cls)
    return cls(**{name: _built(hints.get(name), value) for name, value in raw.items()})


def _built(hint: Any, value: Any) -> Any:
    for arg in (hint, *typing.get_args(hint)):
        origin, args = typing.get_origin(arg), typing.get_args(arg)
        if dataclasses.is_dataclass(arg) and isinstance(value, dict):
            return build(arg, value)
        if origin is list and isinstance(value, list):
            return [_built(args[0], item) for item in value]
        if origin is dict and len(args) == 2 and isinstance(value, dict):
            return {key: _built(args[1], item) for key, item in value.items()}
    return value


def to_body(obj: Any) -> Any:
    """A reply's body: ``dataclasses.asdict(obj)``, without the ``absent`` fields that are None."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_body(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if not (f.metadata.get("absent") and getattr(obj, f.name) is None)}
    if isinstance(obj, (list, tuple)):
        return [to_body(item) for item in obj]
    if isinstance(obj, dict):
        return {key: to_body(item) for key, item in obj.items()}
    return obj
