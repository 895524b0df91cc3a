"""Ops embed and evaluate_retrieval, called as the worker calls them; a suffix prompt trained by the
train op is used through its checkpoint path."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from softprompt_worker.training.checkpoints import build_method_from_checkpoint, load_checkpoint
from softprompt_worker.errors import CancelledError, CheckpointInvalidError, InvalidArgumentError, NotFoundError
from softprompt_worker.evaluation import retrieval_metrics
from softprompt_worker.ops import load_op_modules
from softprompt_worker.serving.handlers import OpContext, Request, WorkerState, get_op

torch.set_num_threads(1)
assert not load_op_modules(["softprompt_worker.ops.embedding", "softprompt_worker.ops.train"])

MODEL = {"tiny": "llama", "device": "cpu", "overrides": {"initializer_range": 0.2}}
TEXTS = ["alpha", "a rather longer text here", "b", "gamma ray"]
ROWS = [{"query": f"q {w}", "positive": f"doc about {w}"} for w in ("cats", "dogs", "rain", "snow", "sun", "tea")]


def call(state, name, body, *, cancelled=False):
    events = []
    ctx = OpContext(1, name, state, lambda _id, _op, event, _t: events.append(event), threading.Event())
    if cancelled:
        ctx.cancel_event.set()
    reply = get_op(name).handler(Request(1, name, body), ctx)
    return reply, events


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A suffix prompt trained for a few steps by the train op: (state, checkpoint path)."""
    state = WorkerState()
    body = {"model": MODEL, "method": "suffix_tuning", "method_config": {"num_virtual_tokens": 4},
            "task": "embedding", "task_options": {"k_values": [1, 3]},
            "data": {"train": {"rows": ROWS}, "eval": {"rows": ROWS[:4]}},
            "training": {"steps": 3, "batch_size": 3, "log_every": 1},
            "run_dir": str(tmp_path_factory.mktemp("run"))}
    reply, events = call(state, "train", body)
    assert reply.body["status"] == "completed"
    evals = [e for e in events if e["event"] == "eval"]
    assert set(evals[-1]["metrics"]) == {"loss", "ndcg@1", "recall@1", "mrr@1", "ndcg@3", "recall@3", "mrr@3"}
    return state, reply.body["checkpoint"]


def test_embed_with_a_suffix_checkpoint_matches_the_method(trained):
    state, path = trained
    reply, _ = call(state, "embed", {"model": MODEL, "prompt": path, "texts": TEXTS, "batch_size": 3})
    emb = reply.tensors["embeddings"]
    assert reply.body == {"count": 4, "dim": 64, "pooling": "last", "normalized": True, "source": "suffix_tuning"}
    assert emb.dtype == torch.float32 and emb.shape == (4, 64)
    frozen = state.cache[next(k for k in state.cache if k[0] == "frozen_model")]
    method = build_method_from_checkpoint(load_checkpoint(path), frozen)
    torch.testing.assert_close(emb, method.encode(TEXTS), atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(emb.numpy(), axis=1), 1.0, rtol=1e-5)
    again, _ = call(state, "embed", {"model": MODEL, "prompt": path, "texts": TEXTS, "pooling": "mean",
                                     "normalize": False})
    assert again.body["pooling"] == "mean" and not again.body["normalized"]
    assert not torch.allclose(again.tensors["embeddings"], emb)


def test_embed_serves_through_the_suffix_s_own_embed_and_its_cached_text_pass(trained, monkeypatch):
    """The op calls ``SuffixTuning.embed`` (the training path): on a decoder with last pooling that takes the
    cached text pass; a pooling override that needs every position takes the full pass."""
    from softprompt_worker.methods.suffix_tuning import SuffixTuning

    state, path = trained
    calls = []
    for name in ("embed", "_last_suffix_state_over_cached_text"):
        original = getattr(SuffixTuning, name)
        monkeypatch.setattr(SuffixTuning, name, lambda self, *a, _f=original, _n=name, **k: calls.append(_n) or
                            _f(self, *a, **k))
    call(state, "embed", {"model": MODEL, "prompt": path, "texts": TEXTS, "batch_size": 2})
    assert calls == ["embed", "_last_suffix_state_over_cached_text"] * 2
    calls.clear()
    call(state, "embed", {"model": MODEL, "prompt": path, "texts": TEXTS, "batch_size": 4, "pooling": "mean"})
    assert calls == ["embed"]


def test_embed_without_prompt_mean_pools_the_base_model(trained):
    state, _ = trained
    reply, _ = call(state, "embed", {"model": MODEL, "texts": TEXTS})
    assert reply.body["source"] == "base" and reply.body["pooling"] == "mean"
    frozen = state.cache[next(k for k in state.cache if k[0] == "frozen_model")]
    with torch.no_grad():
        ids = frozen.tokenizer(TEXTS[1], return_tensors="pt")["input_ids"]
        hidden = frozen.model.base_model(input_ids=ids).last_hidden_state[0]  # (L, H), no padding
    expected = torch.nn.functional.normalize(hidden.mean(0), dim=-1)
    torch.testing.assert_close(reply.tensors["embeddings"][1], expected, atol=1e-5, rtol=1e-4)


def test_evaluate_retrieval_and_sts(trained):
    state, path = trained
    queries = {"q1": "cats", "q2": "rain"}
    corpus = {"d1": "doc about cats", "d2": "doc about rain", "d3": "doc about tea"}
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 2, "d3": 0}}
    sts = {"pairs": [["cats", "cats!"], ["rain", "tea"], ["sun", "snow"]], "scores": [5, 0, 2.5]}
    reply, _ = call(state, "evaluate_retrieval", {"model": MODEL, "prompt": path, "queries": queries, "corpus": corpus,
                                                  "qrels": qrels, "k_values": [1, 2], "sts": sts})
    body = reply.body
    assert body["source"] == "suffix_tuning" and (body["queries"], body["corpus"], body["pairs"]) == (2, 3, 3)
    frozen = state.cache[next(k for k in state.cache if k[0] == "frozen_model")]
    method = build_method_from_checkpoint(load_checkpoint(path), frozen)
    expected = retrieval_metrics(method.encode(list(queries.values())), method.encode(list(corpus.values())),
                                 list(queries), list(corpus), qrels, (1, 2))
    assert {k: v for k, v in body["metrics"].items() if k != "sts_spearman"} == pytest.approx(expected)
    assert -1.0 <= body["metrics"]["sts_spearman"] <= 1.0
    only_sts, _ = call(state, "evaluate_retrieval", {"model": MODEL, "sts": sts})
    assert set(only_sts.body["metrics"]) == {"sts_spearman"} and only_sts.body["source"] == "base"


def test_bad_requests(trained, tmp_path):
    state, path = trained
    bad_bodies = [
        {"texts": TEXTS},  # no model, no prompt
        {"model": MODEL, "texts": []},
        {"model": MODEL, "texts": ["a", 3]},
        {"model": MODEL, "texts": TEXTS, "pooling": "max"},
        {"model": MODEL, "texts": TEXTS, "batch_size": 0},
        {"model": MODEL, "texts": TEXTS, "normalize": "yes"},
    ]
    for body in bad_bodies:
        with pytest.raises(InvalidArgumentError):
            call(state, "embed", body)
    with pytest.raises(NotFoundError):
        call(state, "embed", {"prompt": str(tmp_path / "none.pb"), "texts": TEXTS})
    # The std-0.2 model the prompt was trained on, not "tiny:llama" at the default init: refused by fingerprint.
    with pytest.raises(CheckpointInvalidError):
        call(state, "embed", {"model": {"tiny": "llama"}, "prompt": path, "texts": TEXTS})
    with pytest.raises(CancelledError):
        call(state, "embed", {"model": MODEL, "texts": TEXTS}, cancelled=True)
    for body in ({"model": MODEL}, {"model": MODEL, "queries": {"q": "x"}, "corpus": {"d": "y"}, "qrels": {"q": 1}},
                 {"model": MODEL, "sts": {"pairs": [["a", "b"]], "scores": [1, 2]}}):
        with pytest.raises(InvalidArgumentError):
            call(state, "evaluate_retrieval", body)
