"""Property tests of the worker's job-spec parsing: ``TrainingConfig``, every method's config and
``ModelSpec``, each fed random and mutated specs.

The expectation comes from a table written here (``FIELDS``: each field's type and bounds, from the
docs and ``limits.py``), not from the code under test: a spec whose one mutated field is outside its
table entry must fail with an InvalidArgumentError naming that field; a spec inside every entry must
load. Fully random specs only ever load or fail with InvalidArgumentError (never TypeError & co.).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from softprompt_worker import limits
from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.methods.passage_tuning import PassageTuningConfig
from softprompt_worker.methods.prefix_tuning import PrefixTuningConfig
from softprompt_worker.methods.prompt_tuning import PromptTuningConfig
from softprompt_worker.methods.suffix_tuning import SuffixTuningConfig
from softprompt_worker.models import ModelSpec
from softprompt_worker.training.loop import TrainingConfig

SETTINGS = settings(max_examples=300, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
REPO = Path(__file__).resolve().parents[3]

# (type, lo, hi) for numbers, (type, choices) for enums, (type,) otherwise; "?" suffix = may be null.
L = limits
FIELDS: dict[Any, dict[str, tuple]] = {
    TrainingConfig: {
        "steps": ("int?", 1, L.MAX_STEPS), "epochs": ("int", 1, L.MAX_EPOCHS),
        "batch_size": ("int", 1, L.MAX_BATCH_SIZE), "grad_accumulation": ("int", 1, L.MAX_GRAD_ACCUMULATION),
        "max_length": ("int", 1, L.MAX_SEQUENCE_LENGTH), "optimizer": ("enum", ("adamw", "adafactor", "sgd")),
        "lr": ("float", 0, math.inf, "open"), "schedule": ("enum", ("constant", "linear", "cosine")),
        "warmup_steps": ("int", 0, L.MAX_STEPS), "weight_decay": ("float", 0, math.inf),
        "max_grad_norm": ("float", 0, math.inf), "seed": ("int", 0, L.MAX_SEED),
        "dtype": ("enum", ("auto", "f32", "bf16")), "eval_every": ("int", 0, L.MAX_STEPS),
        "checkpoint_every": ("int", 0, L.MAX_STEPS), "log_every": ("int", 1, L.MAX_STEPS),
    },
    PromptTuningConfig: {
        "num_virtual_tokens": ("int", 1, L.MAX_NUM_VIRTUAL_TOKENS),
        "init": ("enum", ("vocab", "random")),  # text/checkpoint need a second field: see CROSS
        "init_checkpoint": ("str?",), "seed": ("int", 0, L.MAX_SEED),
    },
    PrefixTuningConfig: {
        "num_virtual_tokens": ("int", 1, L.MAX_NUM_VIRTUAL_TOKENS), "prefix_projection": ("bool",),
        "projection_hidden_size": ("int?", 1, L.MAX_HIDDEN_SIZE), "seed": ("int", 0, L.MAX_SEED),
        "init": ("enum", ("random",)),  # text needs init_text and no projection: see CROSS
    },
    SuffixTuningConfig: {
        "num_virtual_tokens": ("int", 1, L.MAX_NUM_VIRTUAL_TOKENS), "attention": ("enum", ("model", "bidirectional")),
        "pooling": ("enum", ("last", "mean", "text_mean", "first")), "normalize": ("bool",), "init": ("enum", ("vocab", "random")),
        "max_length": ("int?", 1, L.MAX_SEQUENCE_LENGTH),
    },
    PassageTuningConfig: {
        "num_virtual_tokens": ("int?", 1, L.MAX_NUM_VIRTUAL_TOKENS), "init": ("enum", ("text",)),
        "passage_vectors": ("enum", ("pooled", "per_token", "none")),
        "num_passage_vectors": ("int", 1, L.MAX_HIDDEN_SIZE), "bottleneck_dim": ("int", 1, L.MAX_HIDDEN_SIZE),
        "activation": ("enum", ("gelu", "relu", "tanh")), "residual": ("bool",),
        "order": ("enum", ("passage_first", "prompt_first")), "passage_prefix": ("str",), "query_prefix": ("str",),
        "prepend_bos": ("bool",), "max_passage_tokens": ("int", 1, L.MAX_SEQUENCE_LENGTH),
        "max_query_tokens": ("int", 1, L.MAX_SEQUENCE_LENGTH),
    },
    ModelSpec: {
        "tiny": ("enum", ("gpt2", "llama", "t5", "bart", "bert")), "seed": ("int", 0, L.MAX_SEED),
        "revision": ("str?",), "dtype": ("enum", ("auto", "f32", "bf16", "f16")), "device": ("str",),
        "trust_remote_code": ("bool",), "quantization": ("enum?", ("int8", "nf4")),
    },
}


# TrainingConfig takes 2.0 where an int is expected (training.py's ``_coerce``); method configs do not.
INTEGRAL_FLOATS_OK = {TrainingConfig}


def is_valid(entry: tuple, value: Any, integral_floats_ok: bool = False) -> bool:
    kind = entry[0]
    if value is None:
        return kind.endswith("?")
    kind = kind.rstrip("?")
    if kind == "bool":
        return type(value) is bool
    if kind == "str":
        return isinstance(value, str)
    if kind == "enum":
        return isinstance(value, str) and value in entry[1]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if kind == "int" and not (isinstance(value, int) or (
            integral_floats_ok and math.isfinite(value) and float(value).is_integer())):
        return False
    lo, hi = entry[1], entry[2]
    open_lo = len(entry) > 3
    return math.isfinite(value) and (value > lo if open_lo else value >= lo) and value <= hi


def valid_values(entry: tuple) -> st.SearchStrategy:
    kind = entry[0].rstrip("?")
    base = {"bool": st.booleans(), "str": st.text(min_size=1, max_size=8)}.get(kind)
    if kind == "enum":
        base = st.sampled_from(entry[1])
    elif kind == "int":
        base = st.integers(entry[1], entry[2])
    elif kind == "float":
        base = st.floats(entry[1], 1e6, exclude_min=len(entry) > 3)
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


def test_limits_agree_with_the_sdk():
    """ts/src/jobs/limits.ts mirrors limits.py name for name and value for value."""
    ts = (REPO / "ts/src/jobs/limits.ts").read_text()
    found = dict(re.findall(r"export const (MAX_[A-Z_]+) = ([0-9_ *+-]+);", ts))
    py = {k: v for k, v in vars(limits).items() if k.startswith("MAX_")}
    assert sorted(found) == sorted(py)
    for name, expr in found.items():
        assert eval(expr.replace("_", "")) == py[name], name  # noqa: S307 - digits and operators only
