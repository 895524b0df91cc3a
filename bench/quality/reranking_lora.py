"""The LoRA baseline of the reranking benchmark: UPR with its frozen LM adapted by PEFT LoRA.

The reranker is UPR's (hard instruction, query log-likelihood, ``scoring.pair_log_likelihood``); the
difference is the model: a copy of the frozen LM with LoRA adapters (PEFT ``inject_adapter_in_model``:
r 8, alpha 16, dropout 0, on the attention projections q/k/v/o; adapters kept in float32, B zero-init so
step 0 is exactly UPR). It is trained like the tuned reranker: the worker's ``reranking`` task (same
batches, hard negatives, ``QueryLikelihoodLoss``) and ``training.train`` loop (AdamW, linear decay,
clip 1.0), same rows, steps and batch size; only the learning rate differs (LoRA's own: fixed a priori,
or chosen on the dev slice as the tuned reranker's is, ``reranking.py``).

    reranker = LoraReranker(frozen, layout, LoraSettings())
    method, summary, losses, seconds = train_lora(frozen, layout, LoraSettings(), task_options, training, rows)
    # with dev rows: summary["metrics"] are the task's own metrics on them, as for the tuned reranker's --dev
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass

import torch
from torch import nn

from softprompt_worker.inference.scoring import HardPrompt, Layout, PairBatch, Scores, pair_log_likelihood
from softprompt_worker.tasks.reranking import RerankingTask
from softprompt_worker.training.loop import TrainingConfig, train


@dataclass(frozen=True)
class LoraSettings:
    r: int = 8
    alpha: int = 16
    targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")  # Llama-style attention
    lr: float = 5e-4  # the top of the usual 1e-4..5e-4: a short run (fixed a priori, not dev-tuned)


class LoraReranker(nn.Module):
    """A ``scoring.Conditioner`` (UPR's slots) over its own LoRA copy of the LM; ``parameters()`` are the
    adapters only, so the worker's training loop optimises exactly them."""

    name = "lora_reranker"
    tasks = frozenset({"reranking"})  # the worker's tasks ask the method what it trains

    def __init__(self, frozen, layout: Layout, settings: LoraSettings):
        super().__init__()
        from peft import LoraConfig, inject_adapter_in_model

        model = copy.deepcopy(frozen.model)  # the shared frozen model (UPR, the tuned reranker) stays as it is
        config = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=0.0,
                            target_modules=list(settings.targets))
        model = inject_adapter_in_model(config, model)
        adapters = []
        for name, param in model.named_parameters():
            is_adapter = "lora_" in name
            if is_adapter:
                param.data = param.data.float()  # Adam on f32 adapters; PEFT casts inputs to their dtype
                adapters.append(param)
            param.requires_grad_(is_adapter)
        model.eval()
        self.frozen = dataclasses.replace(frozen, model=model)  # not a submodule: parameters() skips the LM
        self.adapters = nn.ParameterList(adapters)
        self.hard = HardPrompt(self.frozen, layout)
        self.layout = layout

    def prompt_embeddings(self) -> torch.Tensor:
        return self.hard.prompt_embeddings()  # (n, hidden): UPR's instruction

    def passage_vectors(self, embeds, lengths):
        return None

    def forward(self, batch: PairBatch) -> Scores:
        return pair_log_likelihood(self.frozen, self, batch)


def train_lora(frozen, layout: Layout, settings: LoraSettings, task_options: dict, training: dict,
               train_rows: list[dict], eval_rows: list[dict] | None = None):
    """Returns ``(reranker, summary, losses, train_seconds)``, like ``train_passage_tuning``; ``training["lr"]``
    is LoRA's (the caller passes ``settings.lr`` or a dev candidate)."""
    config = TrainingConfig.from_dict(training)
    losses: list[dict[str, float]] = []

    def emit(event: dict) -> None:
        if event["event"] == "step":
            losses.append({"step": event["step"], "loss": event["loss"]})

    t0 = time.perf_counter()
    torch.manual_seed(config.seed)  # LoRA's A matrices
    reranker = LoraReranker(frozen, layout, settings)
    task = RerankingTask(reranker, dict(task_options), train_rows, eval_rows or [])
    summary = train(reranker, task, config, emit=emit)
    return reranker, summary, losses, time.perf_counter() - t0
