"""Shared pieces of the Python benchmarks (not a test): the job both sides run, the PEFT + Trainer peer,
machine/version records and the results file.

Everything here imports only torch, transformers, peft and the worker's training code (no pyzmq), so
bench/gpu can use it on a machine that has no wire.

    ours = run_ours(build_job(JobSpec(...)))            # softprompt_worker.training.loop.train, in-process
    peer = run_peft_trainer(JobSpec(...))                # PEFT get_peft_model + transformers Trainer
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "python") not in sys.path:
    sys.path.insert(0, str(ROOT / "python"))
RESULTS = ROOT / "bench" / "results"
DATA = ROOT / "data" / "debian"


@dataclass
class JobSpec:
    """One prompt-learning training job, as both sides run it."""

    method: str = "prompt_tuning"  # prompt_tuning | prefix_tuning
    family: str = "gpt2"  # a tiny.py family, built from a config (random weights)
    overrides: dict[str, Any] = field(default_factory=lambda: {"n_layer": 4, "n_embd": 256, "n_head": 4,
                                                               "n_positions": 512})
    num_virtual_tokens: int = 20
    rows: int = 256  # first N rows of data/debian/generate.train.jsonl
    batch_size: int = 8
    max_length: int = 256
    steps: int = 20
    lr: float = 3e-2
    seed: int = 0
    dtype: str = "f32"  # training dtype: f32 | bf16 (autocast)
    model_dtype: str = "f32"  # weight dtype
    device: str = "cpu"

    def model_spec(self) -> dict[str, Any]:
        return {"tiny": self.family, "overrides": self.overrides, "seed": self.seed, "dtype": self.model_dtype,
                "device": self.device}

    def training(self) -> dict[str, Any]:
        return {"steps": self.steps, "batch_size": self.batch_size, "max_length": self.max_length, "lr": self.lr,
                "seed": self.seed, "dtype": self.dtype, "eval_baseline": False, "log_every": max(self.steps, 1)}


def load_rows(name: str = "generate.train.jsonl", n: int | None = None) -> list[dict]:
    with open(DATA / name, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return rows[:n] if n is not None else rows


_MODELS: dict[str, Any] = {}


def frozen_model(job: JobSpec):
    """The frozen model for ``job``, loaded once per process (the worker caches it the same way)."""
    from softprompt_worker.models import ModelSpec, load_frozen_model

    key = json.dumps(job.model_spec(), sort_keys=True)
    if key not in _MODELS:
        _MODELS[key] = load_frozen_model(ModelSpec.from_dict(job.model_spec()))
    return _MODELS[key]


def run_ours(job: JobSpec, rows: list[dict] | None = None) -> dict[str, Any]:
    """``softprompt_worker.training.loop.train`` in-process, built exactly as ops/train.py builds a job:
    seed, method, task, loop. Returns ``{tokens, seconds, tokens_per_s, final_loss}``; the time covers
    building the method and task and the whole loop (not the model load, cached like the worker's)."""
    import torch
    from softprompt_worker.methods.registry import method_class
    from softprompt_worker.tasks.registry import task_class
    from softprompt_worker.training.loop import TrainingConfig, train

    rows = rows if rows is not None else load_rows(n=job.rows)
    frozen = frozen_model(job)
    _reset_peak(job.device)
    t0 = time.perf_counter()
    config = TrainingConfig.from_dict(job.training())
    torch.manual_seed(config.seed)
    cls = method_class(job.method)
    method = cls(cls.config_class.from_dict({"num_virtual_tokens": job.num_virtual_tokens}), frozen)
    task = task_class("generation")(method, {"max_length": job.max_length}, rows, [])
    summary = train(method, task, config)
    _sync(job.device)
    seconds = time.perf_counter() - t0
    return {"tokens": summary["tokens"], "seconds": seconds, "tokens_per_s": summary["tokens"] / seconds,
            "loop_tokens_per_s": summary["tokens"] / summary["elapsed_s"], "final_loss": summary["final_loss"],
            **_peak(job.device)}


def run_peft_trainer(job: JobSpec, rows: list[dict] | None = None) -> dict[str, Any]:
    """The peer: PEFT ``get_peft_model`` + ``PromptTuningConfig``/``PrefixTuningConfig`` and a transformers
    ``Trainer`` with the same batch size, steps, lr (linear decay, AdamW, clip 1.0), seed and rows, tokenised
    by the same ``LMEncoder`` (input + target + EOS, loss on the target). No eval, no logging, no saving.
    Tokens are counted like ours: real (non-pad) tokens of the rows trained on, virtual tokens not included.
    ``job.dtype == "bf16"`` turns on Trainer's ``bf16`` (autocast), on the CPU too."""
    import torch
    from peft import PrefixTuningConfig, PromptTuningConfig, TaskType, get_peft_model
    from transformers import Trainer, TrainingArguments

    from softprompt_worker.tasks.lm_batching import LMEncoder

    rows = rows if rows is not None else load_rows(n=job.rows)
    # The very same frozen weights ours trains on (PEFT wraps the model without changing its weights);
    # train()/eval() mode and requires_grad are put back afterwards.
    frozen = frozen_model(job)
    model = frozen.model
    _reset_peak(job.device)
    t0 = time.perf_counter()
    encoder = LMEncoder(frozen, job.max_length)
    cfg_cls = {"prompt_tuning": PromptTuningConfig, "prefix_tuning": PrefixTuningConfig}[job.method]
    peft_model = get_peft_model(model, cfg_cls(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=job.num_virtual_tokens))

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return len(rows)

        def __getitem__(self, i):
            return rows[i]

    counted: list[int] = []  # tokens of each collated batch, in the order the loader drew them

    def collate(batch_rows):
        # On the CPU, as a Dataset's collate should be: Trainer pins and moves the batch (a CUDA batch
        # here made every GPU run fail: "cannot pin ... only dense CPU tensors can be pinned").
        batch = encoder.collate([encoder.pair(r["input"], r["target"]) for r in batch_rows], device="cpu")
        counted.append(batch.n_tokens)
        return {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask, "labels": batch.labels}

    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="sp-bench-peft-"), per_device_train_batch_size=job.batch_size,
        max_steps=job.steps, learning_rate=job.lr, lr_scheduler_type="linear", warmup_steps=0, weight_decay=0.0,
        max_grad_norm=1.0, optim="adamw_torch", seed=job.seed, data_seed=job.seed, report_to=[],
        logging_strategy="no", save_strategy="no", eval_strategy="no", disable_tqdm=True,
        dataloader_num_workers=0, remove_unused_columns=False, bf16=job.dtype == "bf16",
        use_cpu=job.device == "cpu")
    trainer = Trainer(model=peft_model, args=args, train_dataset=Rows(), data_collator=collate)
    try:
        out = trainer.train()
        _sync(job.device)
    finally:
        model.eval()
        model.requires_grad_(False)
    seconds = time.perf_counter() - t0
    # The loader collates one batch ahead (to know when it ends): count the batches that were trained on.
    tokens = sum(counted[:job.steps])
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds,
            "loop_tokens_per_s": tokens / out.metrics["train_runtime"], "final_loss": out.training_loss,
            **_peak(job.device)}


def _reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        _BASE_ALLOCATED[0] = torch.cuda.memory_allocated()


_BASE_ALLOCATED = [0]


def _peak(device: str) -> dict[str, float]:
    """CUDA memory the run needed above what was resident when it started (the frozen weights, shared by
    both sides): activations, gradients, optimizer state, soft parameters. Nothing on the CPU."""
    if not device.startswith("cuda"):
        return {}
    import torch

    return {"peak_working_memory_mib": (torch.cuda.max_memory_allocated() - _BASE_ALLOCATED[0]) / 2**20,
            "weights_mib": _BASE_ALLOCATED[0] / 2**20}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


# -- records -----------------------------------------------------------------------------------------

def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def alternate_seconds(ours, peer, rounds: int) -> tuple[list[float], list[float]]:
    """Wall seconds of ``ours()`` and ``peer()`` over ``rounds`` rounds, taking turns and swapping who goes
    first each round, so a slow stretch of a shared machine hits both sides alike."""
    times: tuple[list[float], list[float]] = ([], [])
    for i in range(rounds):
        for side in ((0, 1) if i % 2 == 0 else (1, 0)):
            t0 = time.perf_counter()
            (ours, peer)[side]()
            times[side].append(time.perf_counter() - t0)
    return times


def spread(xs: list[float]) -> dict[str, float]:
    """Median, min, max: how noisy the alternating samples were."""
    return {"median": median(xs), "min": float(min(xs)), "max": float(max(xs)), "n": len(xs)}


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), cpu)
    except OSError:
        pass
    info: dict[str, Any] = {"cpu": cpu, "cores": os.cpu_count(), "platform": f"{platform.system()} {platform.release()}"}
    try:
        info["loadavg"] = [round(x, 2) for x in os.getloadavg()]
        info["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (OSError, ValueError, AttributeError):
        pass
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def versions(*extra: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("torch", "transformers", "peft", *extra):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def write_result(name: str | Path, result: dict[str, Any]) -> Path:
    """``bench/results/<name>.json`` (or the path ``name`` is) with date, machine and versions first."""
    path = name if isinstance(name, Path) else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(), **result}
    path.write_text(json.dumps(record, indent=2, default=_jsonable) + "\n", encoding="utf-8")
    return path


def _jsonable(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    return str(value)
