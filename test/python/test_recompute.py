"""Gradient checkpointing (recompute.py): every method, decoder and encoder-decoder, gets the loss and soft
gradients of the plain run, and the layers really run twice (once more in backward)."""

from __future__ import annotations

import pytest
import torch

from softprompt_worker.methods.registry import method_class
from softprompt_worker.models import ModelSpec, load_frozen_model
from softprompt_worker.models.recompute import recomputed_layers, transformer_layers
from softprompt_worker.tasks.registry import task_class
from softprompt_worker.training.loop import TrainingConfig, train

torch.set_num_threads(1)
GEN = [{"input": f"{w}=", "target": w[::-1]} for w in ("abc", "hello there", "kite", "a")]
PAIRS = [{"query": q, "positive": p, "negatives": ["unrelated text"]}
         for q, p in (("red", "an apple"), ("sky colour today", "blue"), ("x", "letters"))]
CASES = {  # method, config, task, options, rows, family
    "prompt/gpt2": ("prompt_tuning", {"num_virtual_tokens": 3}, "generation", {}, GEN, "gpt2"),
    "prompt/t5": ("prompt_tuning", {"num_virtual_tokens": 3}, "generation", {}, GEN, "t5"),
    "prefix/llama": ("prefix_tuning", {"num_virtual_tokens": 3}, "generation", {}, GEN, "llama"),
    "prefix+mlp/bart": ("prefix_tuning", {"num_virtual_tokens": 3, "prefix_projection": True}, "generation", {},
                        GEN, "bart"),
    "prefix/t5": ("prefix_tuning", {"num_virtual_tokens": 3}, "generation", {}, GEN, "t5"),
    "suffix-cached/llama": ("suffix_tuning", {"num_virtual_tokens": 2}, "embedding", {}, PAIRS, "llama"),
    "suffix-mean/gpt2": ("suffix_tuning", {"num_virtual_tokens": 2, "pooling": "mean"}, "embedding", {}, PAIRS,
                         "gpt2"),
    "suffix/bert": ("suffix_tuning", {"num_virtual_tokens": 2, "pooling": "mean"}, "embedding", {}, PAIRS, "bert"),
    "passage/llama": ("passage_tuning", {"num_virtual_tokens": 3}, "reranking", {}, PAIRS, "llama"),
}
OVERRIDES = {"gpt2": {"initializer_range": 0.1}, "llama": {"initializer_range": 0.1}, "bart": {"init_std": 0.1}}


def _loss_and_grads(case: str, recompute: bool):
    method_name, config, task_name, options, rows, family = CASES[case]
    frozen = load_frozen_model(ModelSpec(tiny=family, overrides=OVERRIDES.get(family, {})))
    torch.manual_seed(0)
    cls = method_class(method_name)
    method = cls(cls.config_class.from_dict(config), frozen)
    task = task_class(task_name)(method, options, rows, [])
    batch = next(iter(task.batches(len(rows), torch.Generator().manual_seed(0))))
    calls = [0]
    hooks = [m.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
             for layer in transformer_layers(frozen.model) for m in layer.modules() if m is not layer]
    with recomputed_layers(frozen.model, recompute):
        loss, _ = task.loss(batch)
    loss.backward()
    for h in hooks:
        h.remove()
    return loss.detach(), {n: p.grad.clone() for n, p in method.named_parameters()}, calls[0]


@pytest.mark.parametrize("case", list(CASES))
def test_recomputed_layers_give_the_plain_loss_and_gradients(case):
    loss, grads, plain_calls = _loss_and_grads(case, False)
    loss_rc, grads_rc, recompute_calls = _loss_and_grads(case, True)
    if case.startswith("suffix-cached"):
        # The cached path backpropagates through the k suffix positions only (its text pass holds no graph),
        # and its layers are called with a cache, so they run plainly: nothing worth recomputing.
        assert recompute_calls == plain_calls
    else:
        assert recompute_calls > plain_calls, (plain_calls, recompute_calls)  # backward ran layers again
    torch.testing.assert_close(loss_rc, loss, rtol=0, atol=1e-6)
    assert any(g.abs().sum() > 0 for g in grads.values())  # (a zero-initialised adapter half gets none yet)
    for name, g in grads.items():
        torch.testing.assert_close(grads_rc[name], g, rtol=1e-5, atol=1e-7, msg=name)


def test_the_training_option_recomputes_and_leaves_the_model_as_it_was():
    frozen = load_frozen_model(ModelSpec(tiny="llama"))
    cls = method_class("prefix_tuning")
    method = cls(cls.config_class.from_dict({"num_virtual_tokens": 2}), frozen)
    task = task_class("generation")(method, {}, GEN, [])
    events: list[dict] = []
    train(method, task, TrainingConfig(steps=2, batch_size=4, gradient_checkpointing=True, log_every=1),
          emit=events.append)
    assert all(e["loss"] == e["loss"] for e in events if e["event"] == "step")
    assert all("forward" not in layer.__dict__ for layer in transformer_layers(frozen.model))
    assert TrainingConfig.from_dict({"gradient_checkpointing": True}).gradient_checkpointing is True
