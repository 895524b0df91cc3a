"""Ops rerank and evaluate_reranking, called as the worker calls them: UPR without a prompt, and a
passage-tuned prompt trained by the train op, used through its checkpoint path."""

from __future__ import annotations

import threading

import pytest
import torch

from softprompt_worker.training.checkpoints import build_method_from_checkpoint, load_checkpoint
from softprompt_worker.errors import CancelledError, InvalidArgumentError, TooLargeError
from softprompt_worker.ops import load_op_modules
from softprompt_worker.serving.handlers import OpContext, Request, WorkerState, get_op
from softprompt_worker.inference.scoring import HardPrompt, score_candidates
from softprompt_worker.tasks.reranking import evaluate_rows

torch.set_num_threads(1)
assert not load_op_modules(["softprompt_worker.ops.rerank", "softprompt_worker.ops.train"])

MODEL = {"tiny": "gpt2", "device": "cpu"}
ROWS = [{"query": f"about {w}?", "positive": f"a text about {w}", "negatives": [f"on {o}" for o in others]}
        for w, others in (("cats", ["dogs", "rain"]), ("rain", ["sun", "tea", "cats"]), ("tea", ["snow"]),
                          ("snow", ["cats", "tea"]))]
QUERIES = [{"query": "who wrote it?", "passages": ["Ann wrote it.", "Rain today.", "Bob read it."]},
           {"query": "rain", "passages": ["Rain today.", "x"], "top_k": 1}]


def call(state, name, body, *, cancelled=False):
    events = []
    ctx = OpContext(1, name, state, lambda _id, _op, event, _t: events.append(event), threading.Event())
    if cancelled:
        ctx.cancel_event.set()
    return get_op(name).handler(Request(1, name, body), ctx), events


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A passage-tuned prompt trained for a few steps by the train op: (state, checkpoint path)."""
    state = WorkerState()
    body = {"model": MODEL, "method": "passage_tuning", "method_config": {"num_passage_vectors": 2},
            "task": "reranking", "task_options": {"max_hard_negatives": 2},
            "data": {"train": {"rows": ROWS}, "eval": {"rows": ROWS}},
            "training": {"steps": 2, "batch_size": 2, "log_every": 1},
            "run_dir": str(tmp_path_factory.mktemp("run"))}
    reply, events = call(state, "train", body)
    assert reply.body["status"] == "completed"
    evals = [e for e in events if e["event"] == "eval"]
    assert set(evals[-1]["metrics"]) == {"hits@1", "hits@5", "mrr", "ndcg@10", "loss"}
    return state, reply.body["checkpoint"]


def _frozen(state):
    return state.cache[next(k for k in state.cache if k[0] == "frozen_model")]


def test_rerank_without_prompt_is_upr_sorted_and_cut_to_top_k(trained):
    state, _ = trained
    reply, _ = call(state, "rerank", {"model": MODEL, "queries": QUERIES, "batch_size": 2})
    assert reply.body["reranker"] == "upr"
    frozen = _frozen(state)
    expected = score_candidates(frozen, HardPrompt(frozen), [q["query"] for q in QUERIES],
                                [q["passages"] for q in QUERIES])
    first, second = reply.body["results"]
    order = torch.argsort(expected[0].log_likelihood, descending=True).tolist()
    assert first["indices"] == order
    torch.testing.assert_close(torch.tensor(first["log_likelihood"]), expected[0].log_likelihood[order])
    torch.testing.assert_close(torch.tensor(first["mean_log_likelihood"]), expected[0].mean_log_likelihood[order])
    assert first["log_likelihood"] == sorted(first["log_likelihood"], reverse=True)
    assert len(second["indices"]) == 1 and len(second["log_likelihood"]) == 1


def test_rerank_and_evaluate_with_a_passage_tuned_checkpoint_match_the_method(trained):
    state, path = trained
    frozen = _frozen(state)
    method = build_method_from_checkpoint(load_checkpoint(path), frozen)
    reply, _ = call(state, "rerank", {"prompt": path, "queries": QUERIES})  # model read from the checkpoint
    assert reply.body["reranker"] == "passage_tuning"
    expected = score_candidates(frozen, method, [QUERIES[0]["query"]], [QUERIES[0]["passages"]])[0]
    torch.testing.assert_close(torch.tensor(reply.body["results"][0]["log_likelihood"]),
                               expected.log_likelihood.sort(descending=True).values)
    upr = call(state, "rerank", {"model": MODEL, "queries": QUERIES})[0].body["results"][0]["log_likelihood"]
    assert reply.body["results"][0]["log_likelihood"] != upr  # the trained slots change the scores

    metrics, _ = call(state, "evaluate_reranking", {"model": MODEL, "prompt": path, "rows": ROWS})
    assert metrics.body["queries"] == 4 and metrics.body["reranker"] == "passage_tuning"
    direct = evaluate_rows(frozen, method, ROWS, [[r["positive"], *r["negatives"]] for r in ROWS], batch_size=16)
    assert metrics.body["metrics"] == pytest.approx(direct, abs=1e-6)


def test_rerank_scores_through_the_method_s_forward(trained, monkeypatch):
    """Serving and training share one path: the op's scores come from ``PassageTuning.forward``."""
    from softprompt_worker.methods.passage_tuning import PassageTuning

    state, path = trained
    calls = []
    original = PassageTuning.forward
    monkeypatch.setattr(PassageTuning, "forward", lambda self, batch: calls.append(len(batch.pair_query)) or
                        original(self, batch))
    call(state, "rerank", {"prompt": path, "queries": QUERIES, "batch_size": 2})
    assert sum(calls) == sum(len(q["passages"]) for q in QUERIES) and max(calls) <= 2


def test_bad_requests_and_cancellation(trained):
    state, _ = trained
    for body, error, match in (
            ({"model": MODEL, "queries": []}, InvalidArgumentError, "queries"),
            ({"model": MODEL, "queries": [{"query": "", "passages": ["a"]}]}, InvalidArgumentError, r"queries\[0\].query"),
            ({"model": MODEL, "queries": [{"query": "q", "passages": ["a"], "top_k": 0}]}, InvalidArgumentError,
             "top_k"),
            ({"queries": QUERIES}, InvalidArgumentError, "model: required"),
            ({"model": MODEL, "queries": [{"query": "q", "passages": ["a"] * 20_001}]}, TooLargeError, "20000")):
        with pytest.raises(error, match=match):
            call(state, "rerank", body)
    with pytest.raises(InvalidArgumentError, match=r"rows\[0\].positive"):
        call(state, "evaluate_reranking", {"model": MODEL, "rows": [{"query": "q"}]})
    with pytest.raises(CancelledError):
        call(state, "rerank", {"model": MODEL, "queries": QUERIES}, cancelled=True)
