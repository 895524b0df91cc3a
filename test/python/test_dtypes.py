"""dtype honesty (issue 19.6): what the started event reports is what runs, f32 training means f32 weights,
and ``auto`` picks bf16 only where the GPU runs it natively."""

from __future__ import annotations

import pytest
import torch

from softprompt_worker import models
from softprompt_worker.methods.registry import method_class
from softprompt_worker.models import ModelSpec, load_frozen_model, resolve_dtype
from softprompt_worker.ops.train import model_for_training
from softprompt_worker.tasks.generation import GenerationTask
from softprompt_worker.training.loop import TrainingConfig, train

ROWS = [{"input": "ab=", "target": "ba"}, {"input": "cd=", "target": "dc"}]


def _started(model_dtype: str, training_dtype: str) -> dict:
    frozen = load_frozen_model(ModelSpec(tiny="gpt2", dtype=model_dtype, device="cpu"))
    cls = method_class("prompt_tuning")
    method = cls(cls.config_class.from_dict({"num_virtual_tokens": 2}), frozen)
    events: list[dict] = []
    train(method, GenerationTask(method, {"max_length": 16}, ROWS, []),
          TrainingConfig(steps=1, batch_size=2, dtype=training_dtype), emit=events.append)
    return next(e for e in events if e["event"] == "started")


@pytest.mark.parametrize(("model_dtype", "training_dtype", "runs"),
                         [("f32", "f32", "f32"), ("bf16", "f32", "bf16"), ("f32", "bf16", "bf16"),
                          ("bf16", "auto", "bf16")])
def test_the_started_event_names_the_dtype_that_runs(model_dtype, training_dtype, runs):
    assert _started(model_dtype, training_dtype)["dtype"] == runs


def test_f32_training_loads_an_auto_model_in_f32():
    config = TrainingConfig.from_dict({"dtype": "f32"})
    assert model_for_training(ModelSpec(tiny="gpt2"), config).dtype == "f32"
    assert model_for_training(ModelSpec(tiny="gpt2", dtype="bf16"), config).dtype == "bf16"  # asked for: kept
    assert model_for_training(ModelSpec(tiny="gpt2"), TrainingConfig()).dtype == "auto"


def test_auto_is_bf16_only_where_the_gpu_runs_it_natively(monkeypatch):
    """A pre-Ampere card emulates bf16 (``is_bf16_supported()`` says yes by default): auto stays f32 there."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert resolve_dtype("auto", torch.device("cuda")) == torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert models.native_bf16(torch.device("cpu")) is False
