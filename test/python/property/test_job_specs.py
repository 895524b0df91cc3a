"""Property tests of the worker's job-spec parsing: ``TrainingConfig``, every method's config,
``ModelSpec``, ``DataOptions`` and the reranking task's options, each fed random and mutated specs.

The expectation comes from a table (``FIELDS``: each field's type and bounds), read from the committed JSON
Schemas the SDK is generated from where a class has one, else written here from the docs and ``limits.py``:
a spec whose one mutated field is outside its table entry must fail with an InvalidArgumentError naming
that field; a spec inside every entry must load. Fully random specs only ever load or fail with
InvalidArgumentError (never TypeError & co.).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from softprompt_worker import limits
from softprompt_worker.data import DataOptions, resolve_data
from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.methods.passage_tuning import PassageTuningConfig
from softprompt_worker.methods.prefix_tuning import PrefixTuningConfig
from softprompt_worker.methods.prompt_tuning import PromptTuningConfig
from softprompt_worker.methods.suffix_tuning import SuffixTuningConfig
from softprompt_worker.fields import parse as parse_body
from softprompt_worker.models import ModelSpec
from softprompt_worker.tasks.reranking import RerankingTaskOptions
from softprompt_worker.training.loop import TrainingConfig

SETTINGS = settings(max_examples=300, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
REPO = Path(__file__).resolve().parents[3]

# (type, lo, hi[, lo_open, hi_open]) for numbers, (type, choices) for enums, (type,) otherwise;
# a "?" suffix: may be null.
# Method configs: read from the committed JSON Schemas (proto/schema/, generated from the dataclasses and
# checked by `make schema-check`), the contract the SDK's zod schemas are generated from too, so this
# tests that the worker enforces exactly what the schema promises. The rest: written here from the docs.
L = limits
SCHEMA_DIR = REPO / "proto/schema"
# Values that are only valid together with another field (see CROSS), left out of the random specs.
NEEDS_ANOTHER_FIELD = {"prompt_tuning": {"init": {"text", "checkpoint"}}, "prefix_tuning": {"init": {"text"}},
                       "suffix_tuning": {"init": {"text"}, "attention": {"gated"}},
                       "passage_tuning": {"init": {"vocab"}}}
SKIPPED = {"init_text", "prompt_init_text"}


def schema_entries(name: str) -> dict[str, tuple]:
    """FIELDS entries of one JSON Schema file."""
    out: dict[str, tuple] = {}
    for field, prop in json.loads((SCHEMA_DIR / f"{name}.json").read_text())["properties"].items():
        if field in SKIPPED:
            continue
        types = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
        q = "?" if "null" in types else ""
        kind = types[0]
        if kind == "object":  # early_stopping: a map of its own, see test_training.py
            continue
        if "enum" in prop:
            needs_another = NEEDS_ANOTHER_FIELD.get(name, {}).get(field, ())
            out[field] = ("enum" + q, tuple(c for c in prop["enum"] if c not in needs_another))
        elif kind == "boolean":
            out[field] = ("bool" + q,)
        elif kind == "string":
            out[field] = ("str" + q, "non_empty") if prop.get("minLength") else ("str" + q,)
        else:
            lo_open = "exclusiveMinimum" in prop
            lo = prop.get("exclusiveMinimum", prop.get("minimum", -math.inf))
            hi_open = "exclusiveMaximum" in prop
            hi = prop.get("exclusiveMaximum", prop.get("maximum", math.inf))
            if kind == "integer":  # an integer > 0 is an integer >= 1
                out[field] = ("int" + q, lo + 1 if lo_open else lo, hi - 1 if hi_open else hi)
            else:
                out[field] = ("float" + q, lo, hi, lo_open, hi_open)
    return out


FIELDS: dict[Any, dict[str, tuple]] = {
    TrainingConfig: schema_entries("training"),
    PromptTuningConfig: schema_entries("prompt_tuning"),
    PrefixTuningConfig: schema_entries("prefix_tuning"),
    SuffixTuningConfig: schema_entries("suffix_tuning"),
    PassageTuningConfig: schema_entries("passage_tuning"),
    DataOptions: schema_entries("data"),
    RerankingTaskOptions: schema_entries("reranking_task"),  # parsed as BaseTask parses task_options
    # One of name_or_path / tiny / embedded (see CROSS): the random specs use tiny, which must not be null.
    ModelSpec: {**{k: e for k, e in schema_entries("model").items() if k not in ("name_or_path", "embedded")},
                "tiny": ("enum", schema_entries("model")["tiny"][1])},
}


def test_schema_entries_cover_the_fields():
    """The schema-driven entries see every field of their class but the cross-field ones."""
    for cls, name in ((PromptTuningConfig, "prompt_tuning"), (PrefixTuningConfig, "prefix_tuning"),
                      (SuffixTuningConfig, "suffix_tuning"), (PassageTuningConfig, "passage_tuning"),
                      (TrainingConfig, "training"), (ModelSpec, "model"), (DataOptions, "data"),
                      (RerankingTaskOptions, "reranking_task")):
        objects = {"early_stopping", "overrides"}  # maps: their own tests
        assert set(schema_entries(name)) == {f.name for f in dataclasses.fields(cls)} - SKIPPED - objects


# TrainingConfig takes 2.0 where an int is expected (training.py's ``_coerce``); the others do not.
INTEGRAL_FLOATS_OK = {TrainingConfig}


def is_valid(entry: tuple, value: Any, integral_floats_ok: bool = False) -> bool:
    kind = entry[0]
    if value is None:
        return kind.endswith("?")
    kind = kind.rstrip("?")
    if kind == "bool":
        return type(value) is bool
    if kind == "str":
        return isinstance(value, str) and (len(entry) < 2 or value != "")
    if kind == "enum":
        return isinstance(value, str) and value in entry[1]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if kind == "int" and not (isinstance(value, int) or (
            integral_floats_ok and math.isfinite(value) and float(value).is_integer())):
        return False
    lo, hi = entry[1], entry[2]
    open_lo, open_hi = (entry[3], entry[4]) if len(entry) > 3 else (False, False)
    above = value > lo if open_lo else value >= lo
    below = value < hi if open_hi else value <= hi
    return math.isfinite(value) and above and below


def valid_values(entry: tuple) -> st.SearchStrategy:
    kind = entry[0].rstrip("?")
    base = {"bool": st.booleans(), "str": st.text(min_size=1, max_size=8)}.get(kind)
    if kind == "enum":
        base = st.sampled_from(entry[1])
    elif kind == "int":
        base = st.integers(entry[1], entry[2] if math.isfinite(entry[2]) else None)  # no limit: unbounded
    elif kind == "float":
        open_lo, open_hi = (entry[3], entry[4]) if len(entry) > 3 else (False, False)
        base = st.floats(entry[1], min(entry[2], 1e6), exclude_min=open_lo, exclude_max=open_hi and entry[2] <= 1e6)
    return st.one_of(base, st.none()) if entry[0].endswith("?") else base


def edges(entry: tuple) -> list[Any]:
    if entry[0].rstrip("?") not in ("int", "float"):
        return []
    lo, hi = entry[1], entry[2]
    out = [lo - 1, lo, lo + 0.5]
    if math.isfinite(hi):
        out += [hi, hi + 1, float(hi) * 10]
    return out


ANY = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=6),
                st.binary(max_size=4), st.lists(st.integers(0, 3), max_size=2),
                st.dictionaries(st.text(max_size=2), st.integers(0, 3), max_size=2))


def valid_specs(cls) -> st.SearchStrategy[dict]:
    fields = FIELDS[cls]
    if cls is ModelSpec:  # "tiny" is required (or "name_or_path", see CROSS)
        return st.fixed_dictionaries({"tiny": valid_values(fields["tiny"])},
                                     optional={k: valid_values(e) for k, e in fields.items() if k != "tiny"})
    return st.fixed_dictionaries({}, optional={k: valid_values(e) for k, e in fields.items()})


def parse(cls, raw: dict):
    if cls is DataOptions:  # the data body's options, over two rows (a split may leave none: not an option's fault)
        try:
            return resolve_data({"train": {"rows": [{}, {}]}, **raw} if isinstance(raw, dict) else raw,
                                lambda row: None, store=None, seed=0)
        except InvalidArgumentError as exc:
            if not exc.message.startswith("data.train: no usable training rows"):
                raise
            return None
    if cls is RerankingTaskOptions:
        return parse_body(cls, raw, "task_options.")
    return cls.from_dict(raw)


@pytest.mark.parametrize("cls", list(FIELDS), ids=lambda c: c.__name__)
def test_valid_specs_load(cls):
    @SETTINGS
    @given(valid_specs(cls))
    def check(raw):
        parse(cls, raw)

    check()


@pytest.mark.parametrize("cls", list(FIELDS), ids=lambda c: c.__name__)
def test_one_bad_field_is_named(cls):
    fields = FIELDS[cls]

    @SETTINGS
    @given(valid_specs(cls), st.sampled_from(sorted(fields)), st.data())
    def check(raw, field, data):
        entry = fields[field]
        value = data.draw(st.one_of(ANY, st.sampled_from(edges(entry) or [None])), label="value")
        raw = {**raw, field: value}
        if is_valid(entry, value, cls in INTEGRAL_FLOATS_OK):
            parse(cls, raw)
            return
        with pytest.raises(InvalidArgumentError) as info:
            parse(cls, raw)
        assert re.search(rf"\b{field}\b", info.value.message), (field, value, info.value.message)

    check()


# Rules between fields: (spec, the field the error must name).
CROSS = [
    (PromptTuningConfig, {"init": "text"}, "init_text"),
    (PromptTuningConfig, {"init": "text", "init_text": ""}, "init_text"),
    (PromptTuningConfig, {"init": "checkpoint"}, "init_checkpoint"),
    (PromptTuningConfig, {"init_text": "x"}, "init_text"),
    (PrefixTuningConfig, {"init": "text"}, "init_text"),
    (PrefixTuningConfig, {"init_text": "x"}, "init_text"),
    (PrefixTuningConfig, {"init": "text", "init_text": "x", "prefix_projection": True}, "prefix_projection"),
    (SuffixTuningConfig, {"init": "text"}, "init_text"),
    (SuffixTuningConfig, {"init_text": "x"}, "init_text"),
    (SuffixTuningConfig, {"attention": "gated"}, "pooling"),  # the default 'last' pooling reads the suffix
    (PassageTuningConfig, {"init": "vocab"}, "num_virtual_tokens"),
    (PassageTuningConfig, {"init_text": ""}, "init_text"),
    (TrainingConfig, {"steps": None, "epochs": None}, "epochs"),
    (ModelSpec, {}, "name_or_path"),
    (ModelSpec, {"tiny": "gpt2", "name_or_path": "gpt2"}, "name_or_path"),
    (ModelSpec, {"name_or_path": 7}, "name_or_path"),
    (ModelSpec, {"tiny": "gpt2", "overrides": [1]}, "overrides"),
]


@pytest.mark.parametrize("cls, raw, field", CROSS, ids=[f"{c.__name__}-{f}-{i}" for i, (c, _, f) in enumerate(CROSS)])
def test_cross_field_rules_name_the_field(cls, raw, field):
    with pytest.raises(InvalidArgumentError, match=rf"\b{field}\b"):
        parse(cls, raw)


@pytest.mark.parametrize("cls", list(FIELDS), ids=lambda c: c.__name__)
def test_random_specs_load_or_fail_with_invalid_argument(cls):
    names = sorted(FIELDS[cls]) + ["name_or_path", "overrides", "init_text", "extra"]

    @SETTINGS
    @given(st.one_of(st.dictionaries(st.one_of(st.sampled_from(names), st.binary(max_size=2)), ANY, max_size=6), ANY))
    def check(raw):
        try:
            parse(cls, raw)
        except InvalidArgumentError as exc:
            assert exc.message

    check()


def test_trust_remote_code_only_as_a_real_boolean():
    """A string "false" is truthy: it must not turn remote code on by accident."""
    for value in ("false", "true", 1, 0, "yes", None):
        with pytest.raises(InvalidArgumentError, match="trust_remote_code"):
            ModelSpec.from_dict({"name_or_path": "gpt2", "trust_remote_code": value})
    assert ModelSpec.from_dict({"name_or_path": "gpt2"}).trust_remote_code is False
