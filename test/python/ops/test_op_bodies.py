"""The inference ops' request bodies (``ops/*_bodies.py``), parsed by ``fields.parse`` without a model:
each bad field is named by its wire path, unknown fields are ignored as before, and no body makes the
parser fail with anything but InvalidArgumentError (the worker must never die of a bad message)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.fields import parse
from softprompt_worker.ops.embedding_bodies import EmbedRequest, EvaluateRetrievalRequest
from softprompt_worker.ops.inference_bodies import ClassifyRequest, GenerateRequest
from softprompt_worker.ops.rerank_bodies import EvaluateRerankingRequest, RerankRequest

REQUESTS = (EmbedRequest, EvaluateRetrievalRequest, RerankRequest, EvaluateRerankingRequest, GenerateRequest,
            ClassifyRequest)
MODEL = {"tiny": "gpt2"}


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


json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=12)


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(st.sampled_from(REQUESTS), st.dictionaries(
    st.sampled_from(["model", "prompt", "prompts", "texts", "inputs", "labels", "batch_size", "pooling", "queries",
                     "corpus", "qrels", "k_values", "sts", "rows", "top_p", "stop", "normalize"]), json, max_size=5))
def test_any_body_parses_or_fails_with_invalid_argument(cls, body):
    try:
        parse(cls, body)
    except InvalidArgumentError:
        pass
