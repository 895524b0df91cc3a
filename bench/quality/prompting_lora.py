"""The LoRA baseline of the prompting bench: PEFT LoRA on the frozen model, trained like ours.

Same rows in the same order (the worker task's own batching: ``DataStream`` with the same seed), same
loss (the worker's ``lm_loss``: mean cross-entropy on the target tokens + EOS), same optimizer, schedule
and clipping (the worker's ``build_optimizer`` / ``lr_at`` from ``TrainingConfig``), same steps. Only
the trainable part differs: rank-``r`` adapters on the attention projections instead of soft vectors.

    stats = train_lora(frozen, "classification", {"labels": [...], "max_length": 128}, rows, config, LoraSettings())
    # frozen.model now runs with the adapters (PEFT injects them in place): evaluate it like the bare model
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from softprompt_worker.methods.injection import lm_loss
from softprompt_worker.methods.prompt_tuning import PromptTuning
from softprompt_worker.training.resume import DataStream
from softprompt_worker.tasks.registry import task_class
from softprompt_worker.training.loop import TrainingConfig, build_optimizer, lr_at


@dataclass
class LoraSettings:
    """Standard LoRA settings (Hu et al. 2021; PEFT's examples), fixed a priori, not tuned."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


class _BatchingOnly:
    """Stands in for a soft-prompt method so the worker's task can tokenise and batch rows for LoRA:
    the task reads only ``name``, ``tasks`` (must include it) and ``frozen`` (tokenizer, device)."""

    name = PromptTuning.name
    tasks = PromptTuning.tasks

    def __init__(self, frozen) -> None:
        self.frozen = frozen


def train_lora(frozen, task: str, task_options: dict, rows: list[dict], config: TrainingConfig,
               lora: LoraSettings) -> dict:
    """Adds LoRA adapters to ``frozen.model`` in place and trains them; returns params, time, final loss."""
    from peft import LoraConfig, get_peft_model

    started = time.perf_counter()
    torch.manual_seed(config.seed)
    peft_model = get_peft_model(frozen.model, LoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora.target_modules,
        task_type="CAUSAL_LM"))
    params = [p for p in peft_model.parameters() if p.requires_grad]
    trainable = sum(p.numel() for p in params)
    batching = task_class(task)(_BatchingOnly(frozen), task_options, rows, [])
    stream = DataStream(batching, config.batch_size, config.seed)
    optimizer = build_optimizer(config, params)
    total = config.steps
    losses = []
    peft_model.train()
    for step in range(total):
        batch = next(stream)
        lm = getattr(batch, "lm", batch)  # ClassificationBatch.lm or the LMBatch itself
        logits = frozen.model(input_ids=lm.input_ids, attention_mask=lm.attention_mask).logits  # (B, T, V)
        loss = lm_loss(logits, lm.labels, shift=True)  # () as the tasks' "lm" loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(config, step, total)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    peft_model.eval()
    last = losses[-max(1, total // 4):]  # the last quarter, as ours logs it
    return {"trainable_params": trainable, "train_s": time.perf_counter() - started,
            "final_loss": sum(last) / len(last)}
