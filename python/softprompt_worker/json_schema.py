"""JSON Schema of a spec dataclass, derived from its fields (``fields.option``): the exported form of the one
source that the SDK's zod schemas are generated from (``scripts/gen-schema.py``, docs/schema.md).

    json_schema(PromptTuningConfig)["properties"]["num_virtual_tokens"]
    # {"type": "integer", "exclusiveMinimum": 0, "maximum": 4096, "default": 20, "description": "..."}

Docs come from ``option(doc=...)`` or else the class docstring's ``Attributes:`` / ``Args:`` entry.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
from typing import Any

_TYPES = {"int": "integer", "float": "number", "str": "string", "bool": "boolean", "list": "array", "dict": "object"}
_BOUNDS = {"ge": "minimum", "gt": "exclusiveMinimum", "le": "maximum", "lt": "exclusiveMaximum"}


def json_schema(cls: Any, wire_name: str | None = None) -> dict[str, Any]:
    """The draft 2020-12 schema of ``cls``'s fields; ``x-sdk`` carries ``option(sdk=...)`` to the TS generator."""
    summary = (inspect.getdoc(cls) or "").split("\n\n")[0].replace("\n", " ")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": cls.__name__,
            **({"x-wire-name": wire_name} if wire_name else {}), "description": summary, **_object(cls)}


def _object(cls: Any) -> dict[str, Any]:
    """``type: object`` with a property per field; fields without a default are required."""
    docs, hints = _docstring_entries(cls), typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    properties = {f.name: _property(f, hints[f.name], docs.get(f.name)) for f in fields}
    required = [f.name for f in fields if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING]  # type: ignore[misc]
    return {"type": "object", "additionalProperties": False, "properties": properties,
            **({"required": required} if required else {})}


def _type(hint: Any) -> dict[str, Any]:
    """The schema of a type: scalars, ``X | None``, ``list[X]``, ``tuple[X, Y]``, ``dict[str, X]`` (a map with
    values X; ``dict[str, Any]`` a free map) and nested dataclasses (an object titled by the class)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        out = _type(args[0])
        return {**out, "type": [out["type"], "null"]}
    origin = typing.get_origin(hint) or hint
    if dataclasses.is_dataclass(origin):
        return {"title": origin.__name__, **_object(origin)}
    if origin is list:
        return {"type": "array", "items": _type(args[0])}
    if origin is tuple:
        return {"type": "array", "prefixItems": [_type(a) for a in args], "minItems": len(args), "maxItems": len(args)}
    if origin is dict and args[1] is not Any:
        return {"type": "object", "additionalProperties": _type(args[1])}
    if getattr(origin, "__name__", None) in _TYPES:
        return {"type": _TYPES[origin.__name__]}
    raise TypeError(f"no JSON Schema for the type {hint!r}")


def _ref(hint: Any, ref: str) -> dict[str, Any]:
    """A field that is another schema's object: ``X``, ``X | None`` (``anyOf`` with null), ``list[X]``."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return {"anyOf": [_ref(args[0], ref), {"type": "null"}]}
    if typing.get_origin(hint) is list:
        return {"type": "array", "items": {"$ref": f"{ref}.json"}}
    return {"$ref": f"{ref}.json"}


def _property(f: dataclasses.Field, hint: Any, doc: str | None) -> dict[str, Any]:
    meta, said = f.metadata, f.metadata.get("errors", {})
    out = _ref(hint, meta["ref"]) if "ref" in meta else _type(hint)
    if meta.get("absent"):  # left out when None (fields.to_body): never null, never required
        out = out["anyOf"][0] if "anyOf" in out else {**out, "type": out["type"][0]}
    if "items_non_empty" in meta:
        out["items"]["minLength"] = 1
        if "items_non_empty" in said:
            out["items"]["x-errors"] = {"minLength": said["items_non_empty"]}
    if "items_gt" in meta:
        out["items"]["exclusiveMinimum"] = meta["items_gt"]
    if "choices" in meta:
        (out["items"] if out.get("type") in ("array", ["array", "null"]) else out)["enum"] = list(meta["choices"])
    if meta.get("nan"):  # the float, or each float of the list or map
        out.get("items", out.get("additionalProperties", out))["x-nan"] = True
    for key, name in _BOUNDS.items():
        if key in meta:
            out[name] = meta[key]
    if meta.get("message"):
        out["x-message"] = meta["message"]
    if meta.get("non_empty"):
        out["minLength"] = 1
    if "max_length" in meta:
        out["maxLength"] = meta["max_length"]
    if "pattern" in meta:
        out["pattern"] = meta["pattern"]
    array = out.get("type") in ("array", ["array", "null"])
    min_items, max_items = ("minItems", "maxItems") if array else ("minProperties", "maxProperties")
    if "min_items" in meta:
        out[min_items] = meta["min_items"]
    if "max_items" in meta:
        out[max_items] = meta["max_items"]
    errors = {{"non_empty": "minLength", "pattern": "pattern", "min_items": min_items, "max_items": max_items}[k]: v
              for k, v in said.items() if k != "items_non_empty"}
    if errors:
        out["x-errors"] = errors
    if f.default is not dataclasses.MISSING and not meta.get("absent"):
        out["default"] = f.default
    elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        out["default"] = f.default_factory()  # type: ignore[misc]
    if meta.get("doc") or doc:
        out["description"] = meta.get("doc") or doc
    if meta.get("sdk"):
        out["x-sdk"] = dict(meta["sdk"])
    return out


def _docstring_entries(cls: Any) -> dict[str, str]:
    """``name: text`` entries of the docstring's ``Attributes:`` or ``Args:`` section, joined to one line."""
    doc = inspect.getdoc(cls) or ""
    match = re.search(r"^(?:Attributes|Args):\n((?:(?: {4}.*)?\n?)+)", doc, re.M)
    entries: dict[str, str] = {}
    name = None
    for line in (match.group(1) if match else "").splitlines():
        head = re.match(r" {4}(\w+): (.*)", line)
        if head:
            name = head.group(1)
            entries[name] = head.group(2).strip()
        elif name and line.strip():
            entries[name] += " " + line.strip()
    return entries
