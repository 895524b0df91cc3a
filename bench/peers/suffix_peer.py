"""Suffix-embedding training, ours vs sentence-transformers + a PEFT prompt (a part of bench/peers, not a test).

Both sides train soft vectors on one frozen decoder for retrieval embeddings (InfoNCE with in-batch
negatives, scale 20 = temperature 0.05, last-token pooling, L2-normalised), on the same rows of
data/debian/retrieval.train.jsonl, with the same batch size, steps, lr, AdamW, linear decay and clipping:

ours  the worker's ``suffix_tuning`` method + ``embedding`` task through ``training.train`` (vectors after
      the text; the last suffix position is the embedding).
peer  what a sentence-transformers user writes: ``SentenceTransformer([Transformer, Pooling("lasttoken"),
      Normalize])``, PEFT ``PromptTuningConfig(FEATURE_EXTRACTION)`` on its model (vectors before the text,
      stripped from the output so pooling sees the text), ``MultipleNegativesRankingLoss`` and an AdamW loop.
      A plain loop, not ``SentenceTransformerTrainer`` (that needs ``datasets``, and only adds overhead).

Both run ``k + text`` tokens per input through the same model, so tokens/s compare like for like. The model:
a Llama-shaped decoder from a config (random weights: speed only) with SmolLM2's real 49k tokenizer, saved to
a temp directory that both sides load by path; its chat template is dropped (sentence-transformers would
otherwise wrap every text in a chat prompt).
"""

from __future__ import annotations

import functools
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import torch

import benchlib


@dataclass
class SuffixJob:
    rows: int = 256
    batch_size: int = 16
    steps: int = 15
    num_virtual_tokens: int = 16
    max_length: int = 64  # text tokens per input, the vectors on top
    lr: float = 1e-2
    seed: int = 0
    hidden: int = 256
    layers: int = 4


def shared_model_dir(job: SuffixJob) -> str:
    """Save the frozen decoder + SmolLM2 tokenizer (no chat template) where both sides load it from."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from softprompt_worker.models.embedded import resolve_embedded

    tok = AutoTokenizer.from_pretrained(str(resolve_embedded("smollm2")))
    tok.chat_template = None
    torch.manual_seed(job.seed)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=job.hidden, intermediate_size=job.hidden * 8 // 3,
                         num_hidden_layers=job.layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, tie_word_embeddings=True, pad_token_id=tok.pad_token_id,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    path = tempfile.mkdtemp(prefix="sp-bench-suffix-model-")
    LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def pairs(job: SuffixJob) -> list[dict]:
    return [{"query": r["query"], "positive": r["positive"]} for r in benchlib.load_rows("retrieval.train.jsonl", job.rows)]


def run_ours(path: str, job: SuffixJob) -> dict[str, Any]:
    from softprompt_worker.methods.registry import method_class
    from softprompt_worker.tasks.registry import task_class
    from softprompt_worker.training.loop import TrainingConfig, train

    frozen = _frozen(path)
    rows = pairs(job)
    t0 = time.perf_counter()
    config = TrainingConfig.from_dict({"steps": job.steps, "batch_size": job.batch_size, "max_length": job.max_length,
                                       "lr": job.lr, "seed": job.seed, "dtype": "f32", "eval_baseline": False,
                                       "log_every": job.steps})
    torch.manual_seed(job.seed)
    cls = method_class("suffix_tuning")
    method = cls(cls.config_class.from_dict({"num_virtual_tokens": job.num_virtual_tokens}), frozen)
    task = task_class("embedding")(method, {"max_length": job.max_length, "temperature": 0.05}, rows, [])
    summary = train(method, task, config)
    seconds = time.perf_counter() - t0
    return {"tokens": summary["tokens"], "seconds": seconds, "tokens_per_s": summary["tokens"] / seconds,
            "final_loss": summary["final_loss"], "trainable_params": sum(p.numel() for p in method.parameters())}


def run_st_peft_prompt(path: str, job: SuffixJob) -> dict[str, Any]:
    from peft import PromptTuningConfig, TaskType, get_peft_model
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers.modeling_outputs import BaseModelOutput

    class DropVirtualTokens(torch.nn.Module):
        """The PEFT model, its output cut back to the text positions (what ST's pooling expects)."""

        def __init__(self, peft_model, k: int):
            super().__init__()
            self.peft_model, self.k, self.config = peft_model, k, peft_model.get_base_model().config

        def forward(self, input_ids=None, attention_mask=None, **_):
            out = self.peft_model(input_ids=input_ids, attention_mask=attention_mask)
            return BaseModelOutput(last_hidden_state=out.last_hidden_state[:, self.k:])  # (B, T, H)

    rows = pairs(job)
    transformer = Transformer(path, max_seq_length=job.max_length)  # loading is outside the clock, as ours
    transformer.model.requires_grad_(False)
    t0 = time.perf_counter()
    torch.manual_seed(job.seed)
    peft_model = get_peft_model(transformer.model, PromptTuningConfig(task_type=TaskType.FEATURE_EXTRACTION,
                                                                      num_virtual_tokens=job.num_virtual_tokens))
    transformer.model = DropVirtualTokens(peft_model, job.num_virtual_tokens)
    model = SentenceTransformer(modules=[transformer, Pooling(job.hidden, "lasttoken"), Normalize()], device="cpu")
    loss_fn = MultipleNegativesRankingLoss(model, scale=20.0)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=job.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, 1 - s / job.steps))
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(job.seed)).tolist()
    tokens, step, loss = 0, 0, torch.tensor(0.0)
    model.train()
    while step < job.steps:
        for start in range(0, len(order), job.batch_size):
            if step == job.steps:
                break
            batch = [rows[i] for i in order[start:start + job.batch_size]]
            features = [model.preprocess([r["query"] for r in batch]), model.preprocess([r["positive"] for r in batch])]
            tokens += sum(int(f["attention_mask"].sum()) + job.num_virtual_tokens * len(batch) for f in features)
            loss = loss_fn(features, None)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            step += 1
    seconds = time.perf_counter() - t0
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds, "final_loss": loss.item(),
            "trainable_params": sum(p.numel() for p in params)}


@functools.cache
def _frozen(path: str):
    """The frozen model at ``path``, loaded once per process (the worker caches it the same way)."""
    from softprompt_worker.models import ModelSpec, load_frozen_model

    return load_frozen_model(ModelSpec.from_dict({"name_or_path": path, "dtype": "f32", "device": "cpu"}))
