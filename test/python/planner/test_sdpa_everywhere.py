"""Every method's training forward attends through SDPA (docs/memory.md, "SDPA everywhere"), prefix tuning
included: on a tiny Llama each layer calls ``scaled_dot_product_attention`` and the eager path (which
builds the (query, key) score matrix) is never taken. The planner's activation formula relies on it."""

from __future__ import annotations

import pytest
import torch
import transformers.models.llama.modeling_llama as llama
from torch.overrides import TorchFunctionMode

from softprompt_worker.methods.registry import method_class
from softprompt_worker.models import ModelSpec, load_frozen_model
from softprompt_worker.tasks.registry import task_class

from peak_memory import TASK_OF, rows_for

torch.set_num_threads(1)


class CountSdpa(TorchFunctionMode):
    def __enter__(self):
        super().__enter__()
        self.calls = []
        return self.calls

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is torch.nn.functional.scaled_dot_product_attention:
            self.calls.append(args[0].shape)  # (batch, heads, queries, head_dim)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("method", list(TASK_OF))
def test_training_attends_through_sdpa_only(method, monkeypatch):
    frozen = load_frozen_model(ModelSpec.from_dict({"tiny": "llama"}))
    config = {"num_virtual_tokens": 4, **({"max_passage_tokens": 32, "max_query_tokens": 8}
                                          if method == "passage_tuning" else {})}
    cls = method_class(method)
    m = cls(cls.config_class.from_dict(config), frozen)
    task = task_class(TASK_OF[method])(m, {"max_length": 32} if method != "passage_tuning" else {},
                                       rows_for(method, 2, 32, negatives=1), [])
    def eager(*a, **k):
        raise AssertionError("eager attention: a (query, key) score matrix")

    monkeypatch.setattr(llama, "eager_attention_forward", eager)
    batch = next(iter(task.batches(2, torch.Generator().manual_seed(0))))
    with CountSdpa() as calls:  # a mode, not a patch: prefix tuning's causal bias dispatches on the function
        loss, _ = task.loss(batch)
        loss.backward()
    assert len(calls) >= frozen.num_layers  # suffix tuning's cached text pass makes it twice
    assert len(calls) % frozen.num_layers == 0
