"""The training loop: one readable loop over optimizer steps that emits events and honours cancellation.

    config = TrainingConfig.from_dict({"steps": 200, "lr": 3e-2})
    summary = train(method, task, config, emit=print, cancelled=lambda: False,
                    save_checkpoint=lambda step, metrics, state: f"ckpt-{step}.pb")

Events (each a dict with an ``"event"`` key, emitted in this order):
    started    {trainable_params, trainable_fraction, total_params, device, dtype, total_steps, start_step}
    step       {step, loss, lr, grad_norm, tokens_per_s, memory_bytes}      every ``log_every`` steps
    eval       {step, metrics}                         at step 0 (baseline), every ``eval_every`` steps, end
    best       {step, metric, value, checkpoint}      after an eval that is the best so far (selection.py)
    checkpoint {step, path}                                                every ``checkpoint_every`` + end
    selection  {by, best, beat_baseline, stopped_early_at, message}       once, before done
    done       {summary}

What the loop guarantees:
- The optimizer sees ``method.parameters()`` only; the frozen model's weights never get a gradient.
- No host sync on the hot path: loss and grad norm stay on the device and are read every ``log_every``.
- Cancellation is checked before every micro-batch; a cancelled run drops the partial accumulation, keeps
  the last completed step and writes a final checkpoint, so the ``checkpoint`` it reports is usable.
- Resuming from a ``TrainingState`` (optimizer tensors, RNG state, step, data cursor) follows the same
  trajectory as the uninterrupted run: each epoch's shuffle comes from a generator seeded by
  ``(seed, epoch)``, and the cursor says how many batches of that epoch were already consumed. The
  learning rate is a pure function of the step, so there is no scheduler state to save.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import torch

from softprompt_worker import limits
from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.fields import check_values, option
from softprompt_worker.methods.base import SoftPromptMethod
from softprompt_worker.models import native_bf16
from softprompt_worker.models.recompute import recomputed_layers
from softprompt_worker.training.resume import DataStream, TrainingState, capture_state, restore_state
from softprompt_worker.training.selection import Selection
from softprompt_worker.tasks.base import Task

if TYPE_CHECKING:
    from softprompt_worker.distributed import DataParallel

OPTIMIZERS = ("adamw", "adafactor", "sgd")
SCHEDULES = ("constant", "linear", "cosine")
DTYPES = ("auto", "f32", "bf16")


@dataclass
class EarlyStopping:
    patience: int = option(gt=0, le=limits.MAX_STEPS,
                           doc="evaluations in a row without improvement (needs eval_every > 0)")
    min_delta: float = option(0.0, ge=0, doc="an improvement must exceed this")

    @classmethod
    def from_dict(cls, raw: Any) -> "EarlyStopping":
        if not isinstance(raw, dict):
            raise InvalidArgumentError(f"training.early_stopping: expected a map, got {type(raw).__name__}")
        unknown = sorted(map(str, set(raw) - {"patience", "min_delta"}))
        if unknown or "patience" not in raw:
            raise InvalidArgumentError(f"training.early_stopping: expected {{patience, min_delta?}}, got {sorted(raw)}")
        patience = _coerce("training.early_stopping.patience", raw["patience"], "int")
        min_delta = _coerce("training.early_stopping.min_delta", raw.get("min_delta", 0.0), "float")
        if not 1 <= patience <= limits.MAX_STEPS:
            raise InvalidArgumentError(f"training.early_stopping.patience: expected 1..{limits.MAX_STEPS}, got {patience}")
        if min_delta < 0:
            raise InvalidArgumentError(f"training.early_stopping.min_delta: must be >= 0, got {min_delta}")
        return cls(patience, min_delta)


@dataclass
class TrainingConfig:
    """How to train. Every field has a default; ``from_dict`` rejects unknown fields and bad values.

    Defaults follow the PEFT prompt-learning examples (``peft_prompt_tuning_clm``,
    ``peft_prefix_tuning_seq2seq``: AdamW, lr 3e-2 / 1e-2, linear decay, no warmup). Lester et al. (2021)
    used Adafactor at lr 0.3 for prompt tuning; Li & Liang (2021) used lr 5e-5..8e-5 for prefix tuning
    with the reparameterising MLP. Soft prompts need far larger learning rates than fine-tuning.
    """

    steps: int | None = option(None, gt=0, le=limits.MAX_STEPS,
                               doc="optimizer steps; when set it wins over ``epochs``")
    # The SDK leaves ``epochs`` unset so that it can refuse steps and epochs together.
    epochs: int = option(1, gt=0, le=limits.MAX_EPOCHS, sdk={"optional": True},
                         doc="passes over the training rows when ``steps`` is unset")
    batch_size: int = option(8, gt=0, le=limits.MAX_BATCH_SIZE, doc="rows per micro-batch")
    grad_accumulation: int = option(1, gt=0, le=limits.MAX_GRAD_ACCUMULATION,
                                    doc="micro-batches per optimizer step (effective batch = batch_size × this)")
    max_length: int = option(512, gt=0, le=limits.MAX_SEQUENCE_LENGTH,
                             doc="tokens per row after truncation (tasks read it from their options)")
    optimizer: str = option("adamw", choices=OPTIMIZERS)
    lr: float = option(3e-2, gt=0, doc="PEFT prompt-tuning example; Lester et al. 0.3 with Adafactor")
    schedule: str = option("linear", choices=SCHEDULES, doc="decay to 0 at the last step, after warmup")
    warmup_steps: int = option(0, ge=0, le=limits.MAX_STEPS, doc="linear warmup from 0 to lr")
    weight_decay: float = option(0.0, ge=0, doc="Lester et al. used 1e-5; PEFT examples 0")
    max_grad_norm: float = option(1.0, ge=0, doc="gradient clipping; 0 disables it")
    seed: int = option(0, ge=0, le=limits.MAX_SEED, doc="data order, method-side randomness")
    dtype: str = option("auto", choices=DTYPES, doc=(
        "auto: bf16 autocast on CUDA with native bf16, else f32 | f32 (also loads a model whose dtype is auto "
        "in f32: f32 training means f32 weights) | bf16. The started event says what really runs."))
    eval_every: int = option(0, ge=0, le=limits.MAX_STEPS, doc="steps between evaluations; 0 = only at the end")
    checkpoint_every: int = option(0, ge=0, le=limits.MAX_STEPS,
                                   doc="steps between checkpoints; 0 = only at the end")
    log_every: int = option(10, gt=0, le=limits.MAX_STEPS,
                            doc="steps between ``step`` events (each one syncs the device once)")
    eval_baseline: bool = option(True, doc="evaluate once before the first step (step 0): the untuned baseline")
    select_by: str = option("auto", non_empty=True, max_length=64, doc=(
        "Which evaluation is the result (selection.py): auto = the task's own metric | last = no selection | "
        "a metric name the task reports. The best one's prompt is saved as checkpoints/best.pb."))
    early_stopping: EarlyStopping | None = option(None, doc=(
        "Stop after ``patience`` evaluations in a row that do not improve ``select_by`` by more than "
        "``min_delta``."))
    gradient_checkpointing: bool = option(False, doc=(
        "Keep only each frozen layer's input and recompute its activations in backward (recompute.py): less "
        "memory for long sequences and large batches, about a third more compute per step."))
    shard_model: bool = option(False, doc=(
        "Under a torchrun worker group: shard the frozen model's layers over the ranks with FSDP2 "
        "(distributed/sharded.py), for models larger than one device. Soft parameters stay replicated."))
    # The SDK sends it only when set, so the worker's default applies.
    memory_check: bool = option(True, sdk={"optional": True}, doc=(
        "On CUDA, refuse a job the memory planner says will not fit the device, before loading the model "
        "(planner/check.py, docs/memory.md). False trains anyway."))

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> "TrainingConfig":
        if raw is not None and not isinstance(raw, dict):
            raise InvalidArgumentError(f"training: expected a map, got {type(raw).__name__}")
        raw = dict(raw or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(map(str, set(raw) - known))
        if unknown:
            raise InvalidArgumentError(f"training: unknown field(s) {unknown}; known: {sorted(known)}")
        if raw.get("early_stopping") is not None:
            raw["early_stopping"] = EarlyStopping.from_dict(raw["early_stopping"])
        for f in dataclasses.fields(cls):
            if f.name in raw and f.name != "early_stopping":
                raw[f.name] = _coerce(f"training.{f.name}", raw[f.name], f.type)
        config = cls(**raw)
        config.validate()
        return config

    def validate(self) -> None:
        check_values(self, "training.")  # bounds, choices and lengths of the fields above
        if self.early_stopping is not None:
            if not self.eval_every:
                raise InvalidArgumentError("training.early_stopping: needs training.eval_every > 0 (it counts "
                                           "evaluations without improvement)")
            if self.select_by == "last":
                raise InvalidArgumentError("training.early_stopping: needs a metric to watch; select_by is 'last'")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(name: str, value: Any, annotation: str) -> Any:
    """Check a JSON value against the field's annotation (ints are fine where floats are expected).
    Null only where the annotation allows it; numbers must be finite."""
    if value is None:
        if "None" in annotation:
            return None
        raise InvalidArgumentError(f"{name}: must not be null")
    if annotation == "bool":
        if not isinstance(value, bool):
            raise InvalidArgumentError(f"{name}: expected a boolean, got {value!r:.40}")
        return value
    wants = "int" if "int" in annotation else "float" if "float" in annotation else "str"
    if isinstance(value, bool):
        raise InvalidArgumentError(f"{name}: expected a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidArgumentError(f"{name}: expected a finite number, got {value!r}")
    if wants == "int" and not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
        raise InvalidArgumentError(f"{name}: expected an integer, got {value!r:.40}")
    if wants == "float" and not isinstance(value, (int, float)):
        raise InvalidArgumentError(f"{name}: expected a number, got {value!r:.40}")
    if wants == "str" and not isinstance(value, str):
        raise InvalidArgumentError(f"{name}: expected a string, got {value!r:.40}")
    return int(value) if wants == "int" else float(value) if wants == "float" else value


Emit = Callable[[dict[str, Any]], None]
SaveCheckpoint = Callable[[int, dict[str, float], TrainingState], str]
SaveBest = Callable[[int, dict[str, float]], str]
MicroStep = Callable[[Any, int], tuple[torch.Tensor, int]]


def train(method: SoftPromptMethod, task: Task, config: TrainingConfig, *, emit: Emit | None = None,
          cancelled: Callable[[], bool] | None = None, save_checkpoint: SaveCheckpoint | None = None,
          resume: TrainingState | None = None, parallel: DataParallel | None = None,
          save_best: SaveBest | None = None, yield_turn: Callable[[], None] | None = None,
          micro_step: MicroStep | None = None) -> dict[str, Any]:
    """Train ``method`` on ``task``; returns the summary (also sent in the ``done`` event).

    ``save_checkpoint(step, metrics, state) -> path`` writes a checkpoint and returns where; without it
    no checkpoint events are emitted. ``save_best(step, metrics) -> path`` writes the method as it is
    after an evaluation that is the best so far (``training.select_by``); the summary's ``best`` names it.
    ``resume`` continues a run from a saved ``TrainingState``.
    ``parallel`` (distributed/ddp.py) makes this one rank of a data-parallel run.
    ``yield_turn()`` runs before every micro-batch: the worker serves waiting requests there
    (serving/scheduler.py); the job's random state is kept across it.
    ``micro_step(batch, grad_accumulation) -> (detached loss, tokens)`` runs one micro-batch's forward and
    backward (loss divided by ``grad_accumulation``); by default the task's own loss, under the config's
    autocast. Fused training (training/fused.py) passes one that runs it together with other jobs'.
    """
    emit = emit or (lambda event: None)
    cancelled = cancelled or (lambda: False)
    yield_turn = yield_turn or (lambda: None)
    device = method.frozen.device
    params = [p for p in method.parameters() if p.requires_grad]
    if not params:
        raise InvalidArgumentError(f"method {method.name!r} has no trainable parameters")
    batches_per_epoch = task.num_batches(config.batch_size)
    if batches_per_epoch == 0:
        raise InvalidArgumentError("data.train: no training rows")
    world = parallel.world_size if parallel is not None else 1  # one step takes a micro-batch on each rank
    total_steps = config.steps or config.epochs * math.ceil(batches_per_epoch / (config.grad_accumulation * world))
    optimizer = build_optimizer(config, params)
    stream = DataStream(task, config.batch_size, config.seed)
    if parallel is not None:  # this rank's share of each global batch, the agreed cancel
        task, stream, cancelled = parallel.attach(task, stream, cancelled)
    step, tokens_total = 0, 0
    if resume is not None:
        step, tokens_total = restore_state(resume, config, optimizer, stream, device)
    else:
        torch.manual_seed(config.seed)  # method-side randomness (dropout in a reparameterisation MLP)
    autocast = autocast_for(config.dtype, device)

    def own_micro_step(batch: Any, accumulation: int) -> tuple[torch.Tensor, int]:
        with autocast, recomputed_layers(method.frozen.model, config.gradient_checkpointing):
            loss, n_tokens = task.loss(batch)  # loss: () scalar
        (loss / accumulation).backward()
        return loss.detach(), n_tokens  # the graph (and what it holds) is freed here, before the next forward

    micro_step = micro_step or own_micro_step
    if device.type == "cuda":  # step events report this job's peak, not an earlier job's in this worker
        torch.cuda.reset_peak_memory_stats(device)
    base_params = sum(p.numel() for p in method.frozen.model.parameters())
    trainable = sum(p.numel() for p in params)
    emit({"event": "started", "trainable_params": trainable, "trainable_fraction": trainable / max(base_params, 1),
          "total_params": base_params + trainable, "device": str(device), "dtype": _compute_dtype(autocast, method),
          "total_steps": total_steps, "start_step": step})

    status, metrics, last_loss, checkpoint_path = "completed", {}, None, None
    stopping = config.early_stopping
    selection = Selection.start(config.select_by, stopping.patience if stopping else 0,
                                stopping.min_delta if stopping else 0.0, task)
    if resume is not None:
        selection.restore(resume.meta.get("selection"))

    def evaluate(at: int) -> dict[str, float]:
        """Evaluate, then keep the prompt when it is the best so far."""
        result = _evaluate(method, task, autocast, at, emit)
        if selection.consider(at, result):
            best = selection.best
            if save_best is not None:
                best["checkpoint"] = save_best(at, result)
            emit({"event": "best", "step": at, "metric": selection.by, "value": best["value"],
                  "checkpoint": best["checkpoint"]})
        return result

    baseline: dict[str, float] = {}
    if config.eval_baseline and resume is None:
        # The untuned prompt's metrics at step 0: what the report and the summary compare against.
        # Evaluation draws no random numbers, so the training trajectory is the same with or without it.
        baseline = evaluate(0)
    window_loss = torch.zeros((), device=device)  # () sum of micro-batch losses since the last log
    window_micro, window_tokens, window_start, grad_norm = 0, 0, time.perf_counter(), None
    started_at, evaluated_at, stopped_early_at = time.perf_counter(), None, None
    method.train()
    while step < total_steps and status == "completed":
        cursor = stream.cursor()
        for _ in range(config.grad_accumulation):
            yield_turn()
            if cancelled():
                status = "cancelled"
                break
            loss, n_tokens = micro_step(next(stream), config.grad_accumulation)  # loss: () detached
            window_loss += loss.float()
            window_micro += 1
            window_tokens += n_tokens
        if status == "cancelled":  # drop the partial accumulation: the state stays at the last full step
            optimizer.zero_grad(set_to_none=True)
            stream.seek(cursor)
            break
        if parallel is not None:  # the mean gradient over ranks, once every backward of the step is done
            parallel.reduce_gradients()
        max_norm = config.max_grad_norm if config.max_grad_norm > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)  # () on device, no sync
        lr = lr_at(config, step, total_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        if step % config.log_every == 0 or step == total_steps:
            if parallel is not None:  # the mean over ranks (and their tokens): one all-reduce per log step
                window_loss, window_tokens = parallel.reduce_window(window_loss, window_tokens)
            last_loss = window_loss.item() / max(window_micro, 1)  # the one sync per log window
            if not math.isfinite(last_loss):
                raise InvalidArgumentError(f"training diverged: loss is {last_loss} at step {step}; lower training.lr")
            elapsed = time.perf_counter() - window_start
            emit({"event": "step", "step": step, "loss": last_loss, "lr": lr, "grad_norm": float(grad_norm.item()),
                  "tokens_per_s": window_tokens / max(elapsed, 1e-9), "memory_bytes": _memory_bytes(device)})
            tokens_total += window_tokens
            window_loss.zero_()
            window_micro, window_tokens, window_start = 0, 0, time.perf_counter()
        if config.eval_every and step % config.eval_every == 0 and step < total_steps:
            metrics, evaluated_at = evaluate(step), step
            stop = selection.should_stop()
            if parallel is not None:  # rank 0 decides for everyone: no rank trains on alone
                stop = parallel.leader_says(stop)
            if stop:
                stopped_early_at = step
        if save_checkpoint and config.checkpoint_every and step % config.checkpoint_every == 0 and step < total_steps:
            checkpoint_path = _checkpoint(save_checkpoint, step, metrics, optimizer, stream, tokens_total
                                          + window_tokens, config, device, emit, selection)
        if stopped_early_at is not None:
            break
    tokens_total += window_tokens
    if status == "completed" and evaluated_at != step:
        metrics = evaluate(step)
    if save_checkpoint:
        checkpoint_path = _checkpoint(save_checkpoint, step, metrics, optimizer, stream, tokens_total, config,
                                      device, emit, selection)
    method.eval()
    cur = stream.cursor()
    chosen = selection.summary(stopped_early_at)
    emit({"event": "selection", **chosen})
    summary = {"status": status, "steps": step, "total_steps": total_steps, "final_loss": last_loss,
               "metrics": metrics, "baseline_metrics": baseline, "tokens": tokens_total,
               "epochs": cur["epoch"] + cur["batch"] / batches_per_epoch,
               "elapsed_s": time.perf_counter() - started_at, "checkpoint": checkpoint_path,
               "best": chosen["best"], "selection": {k: v for k, v in chosen.items() if k != "best"}}
    emit({"event": "done", "summary": summary})
    return summary


def lr_at(config: TrainingConfig, step: int, total_steps: int) -> float:
    """Learning rate for optimizer step ``step`` (0-based): linear warmup, then the schedule's decay."""
    if config.warmup_steps and step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return config.lr
    progress = (step - config.warmup_steps) / max(total_steps - config.warmup_steps, 1)  # in [0, 1)
    if config.schedule == "linear":
        return config.lr * (1.0 - progress)
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimizer(config: TrainingConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adafactor":  # torch >= 2.5
        return torch.optim.Adafactor(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, weight_decay=config.weight_decay)


# -- evaluation and checkpoints --------------------------------------------------------------------

def _evaluate(method, task, autocast, step: int, emit: Emit) -> dict[str, float]:
    method.eval()
    with torch.no_grad(), autocast:
        metrics = {k: float(v) for k, v in task.evaluate().items()}
    method.train()
    if metrics:
        emit({"event": "eval", "step": step, "metrics": metrics})
    return metrics


def _checkpoint(save, step, metrics, optimizer, stream, tokens, config, device, emit, selection) -> str:
    state = capture_state(optimizer, step=step, cursor=stream.cursor(), tokens=tokens, config=config.to_dict(),
                          device=device)
    state.meta["selection"] = selection.state()  # a resumed run keeps comparing against the best so far
    path = save(step, metrics, state)
    emit({"event": "checkpoint", "step": step, "path": str(path)})
    return str(path)


# -- device helpers ----------------------------------------------------------------------------------

def autocast_for(dtype: str, device: torch.device):
    """The autocast context a job's forward passes run under (``training.dtype``)."""
    if dtype == "f32":
        return contextlib.nullcontext()
    if dtype == "auto" and not native_bf16(device):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _compute_dtype(autocast, method: SoftPromptMethod) -> str:
    """What the frozen model really computes in: bf16 under autocast, else its weights' dtype."""
    if not isinstance(autocast, contextlib.nullcontext):
        return "bf16"
    return {torch.bfloat16: "bf16", torch.float16: "f16"}.get(method.frozen.dtype, "f32")


def _memory_bytes(device: torch.device) -> int:
    """Peak device memory on CUDA; peak resident set size of the process on the CPU."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
    except (ImportError, OSError):  # pragma: no cover - non-POSIX
        return 0
