"""Every LM method on every tiny model family: a few training steps lower the loss, only the soft
parameters get gradients, and the frozen base weights stay bit-identical.

Each case overfits one small batch of a generation task for 10 steps; learning a held-out behaviour is
shown in test_learning_prompt_prefix.py. Random tiny models at the default init scale (std 0.02) barely
depend on their context (prompt tuning on BART moved the loss 5.496 -> 5.491), so the models here are
initialised at std 0.1, where the output depends on the context as a trained model's does.
"""

from __future__ import annotations

import pytest
import torch

from softprompt_worker.methods.registry import method_class
from softprompt_worker.models import ModelSpec, load_frozen_model
from softprompt_worker.tasks.generation import GenerationTask
from softprompt_worker.training.loop import TrainingConfig, train

torch.set_num_threads(1)

METHODS = {
    "prompt_tuning": {"num_virtual_tokens": 4},
    "prefix_tuning": {"num_virtual_tokens": 4},
    "prefix_tuning+mlp": {"num_virtual_tokens": 4, "prefix_projection": True, "projection_hidden_size": 32},
    "p_tuning": {"num_virtual_tokens": 4, "encoder_hidden_size": 32},
    "p_tuning+lstm": {"num_virtual_tokens": 4, "encoder": "lstm", "encoder_hidden_size": 32},
}
FAMILIES = {"gpt2": {"initializer_range": 0.1}, "llama": {"initializer_range": 0.1}, "t5": {},
            "bart": {"init_std": 0.1}}
ROWS = [{"input": f"{w}=", "target": w[::-1]} for w in ("abc", "hello", "kite", "moon")]


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("variant", list(METHODS))
def test_a_few_steps_lower_the_loss_and_touch_only_soft_params(variant, family):
    frozen = load_frozen_model(ModelSpec(tiny=family, device="cpu", overrides=FAMILIES[family]))
    cls = method_class(variant.split("+")[0])
    method = cls(cls.config_class.from_dict(METHODS[variant]), frozen)
    task = GenerationTask(method, {"max_length": 32}, ROWS, [])
    base_before = {name: p.detach().clone() for name, p in frozen.model.named_parameters()}
    soft_before = {name: p.detach().clone() for name, p in method.named_parameters()}

    # One step by hand: gradients reach every soft parameter and no base parameter.
    batch = next(iter(task.batches(4, torch.Generator().manual_seed(0))))
    loss, _ = task.loss(batch)
    loss.backward()
    for name, p in method.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} got no gradient"
    for name, p in frozen.model.named_parameters():
        assert p.grad is None and not p.requires_grad, name
    method.zero_grad(set_to_none=True)

    events = []
    train(method, task, TrainingConfig(steps=10, batch_size=4, lr=0.1, schedule="constant", log_every=1),
          emit=events.append)
    losses = [e["loss"] for e in events if e["event"] == "step"]
    # Measured first -> 10th step: prompt gpt2 5.80->4.82, llama 5.87->4.40, t5 5.89->5.30, bart 5.88->5.22;
    # prefix 5.68->3.93, 5.71->3.91, 5.81->3.20, 5.56->3.52; prefix+mlp 5.83->3.24, 5.86->3.06, 6.02->2.47,
    # 5.71->3.72; p-tuning (MLP) 6.02->5.00, 5.97->4.35, 6.05->5.06, 5.80->5.14; p-tuning (LSTM) 5.89->5.04,
    # 6.11->4.31, 5.95->5.09, 5.85->5.14. The weakest case falls by 10%.
    assert losses[-1] < 0.95 * losses[0], losses
    for name, p in frozen.model.named_parameters():
        assert torch.equal(p, base_before[name]), f"base weight {name} changed"
    assert any(not torch.equal(p, soft_before[n]) for n, p in method.named_parameters())
