"""The ops' request bodies (``ops/*_bodies.py``), parsed by ``fields.parse`` without a model:
each bad field is named by its wire path, unknown fields are ignored as before, and no body makes the
parser fail with anything but InvalidArgumentError (the worker must never die of a bad message)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.fields import build, option, parse, to_body
from softprompt_worker.json_schema import json_schema
from softprompt_worker.ops.checkpoint_bodies import CheckpointImportPeftRequest, CheckpointInspectRequest
from softprompt_worker.ops.control_bodies import CancelRequest, HealthRequest, HelloRequest
from softprompt_worker.ops.data_bodies import DataAppendRequest, DataCloseRequest
from softprompt_worker.ops.embedding_bodies import EmbedRequest, EvaluateRetrievalRequest
from softprompt_worker.ops.inference_bodies import ClassifyRequest, GenerateRequest
from softprompt_worker.ops.plan_bodies import PlanRequest
from softprompt_worker.ops.prompt_bodies import PromptLoadRequest
from softprompt_worker.ops.rerank_bodies import EvaluateRerankingRequest, RerankRequest
from softprompt_worker.ops.train_bodies import RunInspectRequest, TrainRequest
from softprompt_worker.ops.train_many_bodies import TrainManyRequest
from softprompt_worker.training.job import TrainingExtras

REQUESTS = (EmbedRequest, EvaluateRetrievalRequest, RerankRequest, EvaluateRerankingRequest, GenerateRequest,
            ClassifyRequest, TrainRequest, TrainingExtras, PlanRequest, RunInspectRequest, PromptLoadRequest,
            CheckpointInspectRequest, CheckpointImportPeftRequest, DataAppendRequest, HelloRequest, HealthRequest,
            CancelRequest, TrainManyRequest)
MODEL = {"tiny": "gpt2"}
JOB = {"model": MODEL, "method": "prompt_tuning", "task": "generation"}
TRAIN = {**JOB, "data": {"train": {"path": "t.jsonl"}}, "run_dir": "run"}


@pytest.mark.parametrize("cls, body, message", [
    (EmbedRequest, {"model": MODEL}, "texts: required"),
    (EmbedRequest, {"texts": []}, "texts: expected at least one string, got 0"),
    (EmbedRequest, {"texts": ["a", 3]}, "texts[1]: expected a string, got 3"),
    (EmbedRequest, {"texts": ["a"], "batch_size": 5000}, "batch_size: must be an integer in 1..4096, got 5000"),
    (EmbedRequest, {"texts": ["a"], "batch_size": True}, "batch_size: expected an integer"),
    (EmbedRequest, {"texts": ["a"], "pooling": "max"}, "pooling: 'max' is not one of last, mean, text_mean, first"),
    (EmbedRequest, {"texts": ["a"], "prompt": ""}, "prompt: expected a prompt name or checkpoint path"),
    (EmbedRequest, {"texts": ["a"], "model": "gpt2"}, "model: expected a map"),
    (EvaluateRetrievalRequest, {"queries": {}}, "queries: expected a non-empty map of id → text"),
    (EvaluateRetrievalRequest, {"qrels": {"q": {"d": "yes"}}}, "qrels['q']['d']: expected a finite number"),
    (EvaluateRetrievalRequest, {"k_values": [0]}, "k_values: each must be > 0"),
    (EvaluateRetrievalRequest, {"sts": {"pairs": [["a", "b"], ["c"]], "scores": [1, 2]}}, r"sts.pairs[1]: expected a list of 2"),
    (EvaluateRetrievalRequest, {"sts": {"pairs": [["a", "b"]], "scores": [1]}}, "sts.pairs: expected at least 2 entries"),
    (RerankRequest, {"queries": []}, "queries: expected at least one query, got 0"),
    (RerankRequest, {"queries": [3]}, "queries[0]: expected a map, got 3"),
    (RerankRequest, {"queries": [{"query": " ", "passages": ["a"]}]}, "queries[0].query: expected a non-empty string"),
    (RerankRequest, {"queries": [{"query": "q", "passages": ["a", ""]}]}, "queries[0].passages[1]: expected a non-empty string"),
    (RerankRequest, {"queries": [{"query": "q", "passages": ["a"], "top_k": 0}]}, "queries[0].top_k: must be > 0, got 0"),
    (EvaluateRerankingRequest, {"rows": [{"query": "q"}]}, "rows[0].positive: required"),
    (GenerateRequest, {"inputs": ["x"], "top_p": 1.5}, "top_p: must be in (0, 1], got 1.5"),
    (GenerateRequest, {"inputs": ["x"], "prompts": ["a", ""]}, "prompts[1]: expected a non-empty prompt name"),
    (GenerateRequest, {"inputs": ["x"], "prompts": [3]}, "prompts[0]: expected a string, got 3"),
    (ClassifyRequest, {"inputs": ["x"], "labels": ["a"]}, "labels: expected at least two labels, got 1"),
    (TrainRequest, {k: v for k, v in TRAIN.items() if k != "model"}, "model: required"),
    (TrainRequest, {**TRAIN, "method": 3}, "method: expected a string, got 3"),
    (TrainRequest, {**TRAIN, "training": []}, "training: expected a map"),
    (TrainRequest, {**TRAIN, "run_dir": ""}, "run_dir: must not be empty"),
    (TrainRequest, {**TRAIN, "overwrite": "yes"}, "overwrite: expected a boolean"),
    (TrainRequest, {**TRAIN, "job_id": ""}, "job_id: must not be empty"),
    (TrainingExtras, {"keep_last": -1}, "keep_last: must be >= 0, got -1"),
    (TrainingExtras, {"report_to": "tensorboard"}, "report_to: expected a list"),
    (PlanRequest, {**JOB, "gpu_bytes": 0}, "gpu_bytes: must be > 0, got 0"),
    (PlanRequest, {**JOB, "device": "tpu"}, "device: 'tpu' is not one of cuda, cpu"),
    (RunInspectRequest, {"job_id": "a"}, "run_dir: required"),
    (PromptLoadRequest, {"name": "", "path": "a.pb"}, "name: expected a non-empty prompt name"),
    (PromptLoadRequest, {"name": "a", "path": ""}, "path: expected a checkpoint file path"),
    (PromptLoadRequest, {"name": "a", "path": "a.pb", "shared": "yes"}, "shared: expected a boolean"),
    (CheckpointInspectRequest, {}, "path: required"),
    (CheckpointImportPeftRequest, {"adapter_dir": "a", "out": "b.pb"}, "model: required"),
    (DataAppendRequest, {"dataset": "d", "rows": [3]}, "rows[0]: expected a map, got 3"),
    (DataCloseRequest, {"dataset": ""}, "dataset: expected a dataset id"),
    (HelloRequest, {"protocol": "1"}, "protocol: expected an integer, got '1'"),
    (HelloRequest, {"protocol": 1, "client_id": "x" * 129}, "client_id: longer than 128 characters"),
    (HealthRequest, {"stuck_after_s": 0}, "stuck_after_s: must be > 0, got 0"),
    (CancelRequest, {"target": 0}, "target: must be > 0, got 0"),
    (CancelRequest, {"target": 1, "part": -1}, "part: must be >= 0, got -1"),
    (TrainManyRequest, {"jobs": []}, "jobs: expected a list of 1..64 train bodies, got 0"),
    (TrainManyRequest, {"jobs": [{}] * 65}, "jobs: expected a list of 1..64 train bodies, got 65"),
])
def test_a_bad_field_is_named_by_its_wire_path(cls, body, message):
    with pytest.raises(InvalidArgumentError) as info:
        parse(cls, body)
    assert info.value.message.startswith(message), info.value.message


def test_defaults_nested_bodies_and_unknown_fields():
    body = parse(RerankRequest, {"model": MODEL, "queries": [{"query": "q", "passages": ["a"]}], "extra": 1})
    assert body.batch_size == 16 and body.queries[0].top_k is None and body.queries[0].passages == ["a"]
    assert parse(EmbedRequest, {"texts": ["a"]}).batch_size == 32
    assert parse(GenerateRequest, {"inputs": ["x"], "prompts": ["a", None]}).prompts == ["a", None]
    sts = parse(EvaluateRetrievalRequest, {"sts": {"pairs": [["a", "b"], ["c", "d"]], "scores": [1, 0.5]}}).sts
    assert sts.pairs == [["a", "b"], ["c", "d"]] and sts.scores == [1, 0.5]
    assert parse(EvaluateRetrievalRequest, {}).k_values == [1, 10, 100]


@dataclass(kw_only=True)
class Part:
    n: int = option(ge=0)


@dataclass(kw_only=True)
class Made:
    parts: dict[str, Part] = option()
    best: Part | None = option(None, ref="made_reply_part")
    seen: bool | None = option(None, absent=True)
    loss: float = option(nan=True)
    tags: list[str] | None = option(None, choices=("a", "b"))


def test_a_reply_is_built_from_the_workers_map_and_leaves_its_absent_fields_out():
    raw = {"parts": {"x": {"n": 1}}, "best": None, "loss": 1.5, "tags": ["a"]}
    made = build(Made, raw)
    assert made.parts["x"] == Part(n=1) and made.seen is None and to_body(made) == raw  # no "seen": null
    assert to_body(build(Made, {**raw, "seen": True, "best": {"n": 2}})) == {**raw, "seen": True, "best": {"n": 2}}
    with pytest.raises(TypeError):
        build(Made, {**raw, "extra": 1})  # a worker bug, not a bad request
    with pytest.raises(InvalidArgumentError, match="tags\\[1\\]: 'c' is not one of a, b"):
        parse(Made, {**raw, "tags": ["a", "c"]})


def test_the_schema_of_a_reply_says_absent_nan_and_refs():
    props = json_schema(Made)["properties"]
    assert props["seen"] == {"type": "boolean"} and "seen" not in json_schema(Made)["required"]
    assert props["loss"]["x-nan"] and props["parts"]["additionalProperties"]["properties"]["n"]["minimum"] == 0
    assert props["best"]["anyOf"] == [{"$ref": "made_reply_part.json"}, {"type": "null"}]
    assert props["tags"]["items"] == {"type": "string", "enum": ["a", "b"]}


json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=12)


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(st.sampled_from(REQUESTS), st.dictionaries(
    st.sampled_from(["model", "prompt", "prompts", "texts", "inputs", "labels", "batch_size", "pooling", "queries",
                     "corpus", "qrels", "k_values", "sts", "rows", "top_p", "stop", "normalize", "method", "task",
                     "training", "data", "run_dir", "keep_last", "report_to", "gpu_bytes", "job_id", "name", "path",
                     "dataset", "protocol", "client_id", "target", "part", "stuck_after_s", "jobs"]), json, max_size=5))
def test_any_body_parses_or_fails_with_invalid_argument(cls, body):
    try:
        parse(cls, body)
    except InvalidArgumentError:
        pass
