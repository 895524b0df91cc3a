"""The ``train`` op: one streaming request trains one soft prompt and writes its run directory.

Request body::

    {"model": ModelSpec,                       # {"name_or_path": ...} or {"tiny": "gpt2"}, see models.py
     "method": "prompt_tuning" | "prefix_tuning" | ...,
     "method_config"?: {...},                  # the method's Config fields
     "task": "generation" | "classification" | ...,
     "task_options"?: {...},                   # e.g. {"labels": ["positive", "negative"]}
     "data": {"train": {"path"}|{"dataset"}|{"rows"}, "eval"?: same, "eval_fraction"?, "on_bad_row"?},
     "training"?: {...},                       # TrainingConfig fields, and two this op handles:
                                               # "keep_last"?: int (0 = all): checkpoints kept (older ones
                                               # are deleted); "report_to"?: ["tensorboard"] (trackers.py)
     "run_dir": str,                           # job.json, events.jsonl, data/, checkpoints/ go here
     "resume_from"?: str,                      # a checkpoint with training state: continue that run
     "job_id"?: str,                           # the client's id for the job, kept across its resumes
     "overwrite"?: bool}                       # replace the checkpoints an earlier job left in run_dir

Events: ``{"event": "data", train_rows, eval_rows, skipped, skipped_rows}`` then the training loop's
``started / step / eval / best / checkpoint / selection / done`` (see training.py). Final reply:
``{"status": "completed" | "cancelled", "summary": {...}, "checkpoint": path, "best": {step, metrics,
value, checkpoint} | None}``: ``checkpoint`` is the last step (resumable), ``best`` the evaluation
``training.select_by`` chose, saved as ``checkpoints/best.pb`` (selection.py). A cancelled job ends
with this reply too, and its checkpoint is usable (and resumable).

Crash recovery (runs.py): the resolved rows are saved to ``run_dir/data/`` before training starts and
``job_id`` goes into every checkpoint's training state, so after a worker died ``run_inspect`` says
where that job can pick up, and the resumed ``train`` reads the saved rows as its data:

    run_inspect {"run_dir": str, "job_id"?: str}
        -> {"run_dir", "checkpoint": {"path", "step"} | None, "data": {"train", "eval", "train_rows",
            "eval_rows"} | None, "invalid": [{"path", "error"}]}

Before loading the model on CUDA the job is planned (planner/check.py): one whose estimated peak exceeds the
device's memory is refused with ``out_of_memory`` naming the estimate, the device's memory and the changes
that fit, unless ``training.memory_check`` is false.

Failures end the request with an error (also logged to events.jsonl as ``{"event": "error", ...}``): a
checkpoint the disk refuses is ``storage`` naming the file and the previous, intact checkpoint; a
device out of memory is ``out_of_memory`` with the batch settings to try instead.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch

from softprompt_worker import limits
from softprompt_worker.training.checkpoints import build_method_from_checkpoint, load_checkpoint, save_checkpoint
from softprompt_worker.data import resolve_data
from softprompt_worker.distributed import collective, data_parallel, sharded_model
from softprompt_worker.errors import InvalidArgumentError, OutOfMemoryError, StorageError, WorkerError, from_exception
from softprompt_worker.fields import check_job_shape
from softprompt_worker.methods.registry import method_class
from softprompt_worker.models import FrozenModel, ModelSpec, resolve_device
from softprompt_worker.ops.data import datasets
from softprompt_worker.serving.handlers import OpContext, Reply, Request, op
from softprompt_worker.planner.admission import wait_reason
from softprompt_worker.planner.check import refuse_if_too_large
from softprompt_worker.models.cache import get_frozen_model
from softprompt_worker.training.runs import RunDir, inspect_run
from softprompt_worker.training.selection import better
from softprompt_worker.tasks.registry import check_method, task_class
from softprompt_worker.training.trackers import check_report_to, open_trackers
from softprompt_worker.training.loop import MicroStep, TrainingConfig, train

log = logging.getLogger("softprompt_worker")

_FIELDS = {"model", "method", "method_config", "task", "task_options", "data", "training", "run_dir", "resume_from",
           "job_id", "overwrite"}


# Seeding and building a method is one step per job: two jobs starting at once do not interleave their
# draws from torch's global generator, so a job's initial soft state depends on its seed alone.
_INIT_LOCK = threading.Lock()


def _admission(body: dict[str, Any], state) -> str | None:
    return wait_reason([body], state)


# a job: it yields the device between micro-batches (serving/scheduler.py); on CUDA it starts beside running
# jobs only when their memory leaves room for it (planner/admission.py)
@op("train", training=True, admission=_admission)
@collective  # under torchrun every rank runs it (distributed/collective_ops.py)
def train_op(req: Request, ctx: OpContext) -> Reply:
    job = prepare_job(req.body, ctx)
    parallel = data_parallel(ctx, job.method)  # None in a single process
    if parallel is not None and not parallel.is_leader:  # a follower trains along and writes nothing
        return Reply(body=train(job.method, job.task, job.config, resume=job.resume, parallel=parallel))
    return run_job(job, ctx, parallel=parallel, yield_turn=ctx.yield_turn)


@dataclass
class PreparedJob:
    """A checked ``train`` body with its model loaded, rows read and method built: ready to run."""

    body: dict[str, Any]
    config: TrainingConfig
    method: Any
    task: Any
    resume: Any  # the checkpoint's TrainingState, when resuming
    run: RunDir
    report: Any  # the data report (rows read, skipped)
    train_rows: list[dict]
    eval_rows: list[dict]
    job_id: str | None
    keep_last: int
    report_to: Any
    resuming: bool
    overwrite: bool


@dataclass
class CheckedJob:
    """A ``train`` body checked without touching the disk or loading anything."""

    config: TrainingConfig
    keep_last: int
    report_to: Any
    task_cls: Any
    method_cls: Any
    spec: ModelSpec
    job_id: str | None
    overwrite: bool


def check_job(body: dict[str, Any]) -> CheckedJob:
    """The checks of a ``train`` body that need no model, data or run directory (``train_many`` runs them
    on every job before it prepares any)."""
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise InvalidArgumentError(f"train: unknown field(s) {unknown}; known: {sorted(_FIELDS)}")
    check_job_shape(body)
    job_id = body.get("job_id")
    if job_id is not None and (not isinstance(job_id, str) or not job_id):
        raise InvalidArgumentError(f"job_id: expected a non-empty string, got {job_id!r:.40}")
    training = dict(body.get("training") or {})
    keep_last = _keep_last(training.pop("keep_last", 0))  # retention is this op's business, not the loop's
    report_to = check_report_to(training.pop("report_to", None))  # so are the trackers (trackers.py)
    config = TrainingConfig.from_dict(training)
    task_cls = task_class(body["task"])
    check_method(task_cls, body["method"])
    spec = model_for_training(ModelSpec.from_dict(body.get("model")), config)
    refuse_if_too_large(body, resolve_device(spec.device), config.memory_check, config.shard_model)
    overwrite = body.get("overwrite", False)
    if not isinstance(overwrite, bool):
        raise InvalidArgumentError(f"overwrite: expected a boolean, got {overwrite!r:.40}")
    return CheckedJob(config=config, keep_last=keep_last, report_to=report_to, task_cls=task_cls,
                      method_cls=method_class(body["method"]), spec=spec, job_id=job_id, overwrite=overwrite)


def prepare_job(body: dict[str, Any], ctx: OpContext, checked: CheckedJob | None = None) -> PreparedJob:
    """Everything a ``train`` body needs before it trains: the checks, the run directory, the model, the rows and
    the method (``train_many`` prepares each of its jobs so)."""
    checked = checked or check_job(body)
    config, task_cls, method_cls, spec = checked.config, checked.task_cls, checked.method_cls, checked.spec
    overwrite, job_id = checked.overwrite, checked.job_id
    run = RunDir(body.get("run_dir"))
    resuming = bool(body.get("resume_from"))
    if not overwrite:
        run.check_unused(resuming=resuming, overwrite=False)  # refuse early, before the model loads
    frozen = sharded_model(ctx.state, spec) if config.shard_model else get_frozen_model(ctx.state, spec)
    # a task may check rows against its options too (classification: the label is one of the labels)
    validate = getattr(task_cls, "row_validator", lambda _options: task_cls.validate_row)(dict(body.get("task_options") or {}))
    train_rows, eval_rows, report = resolve_data(body.get("data"), validate, store=datasets(ctx),
                                                 seed=config.seed)
    with _INIT_LOCK:
        torch.manual_seed(config.seed)  # every method's initial soft vectors (and MLP weights) come from it
        method, resume = _method(body, method_cls, frozen)
    options = dict(body.get("task_options") or {})
    if "max_length" in getattr(task_cls, "options_defaults", {}):
        options.setdefault("max_length", config.max_length)
    task = task_cls(method, options, train_rows, eval_rows)
    return PreparedJob(body=body, config=config, method=method, task=task, resume=resume, run=run, report=report,
                       train_rows=train_rows, eval_rows=eval_rows, job_id=job_id, keep_last=checked.keep_last,
                       report_to=checked.report_to, resuming=resuming, overwrite=overwrite)


def run_job(job: PreparedJob, ctx: OpContext, *, parallel=None, send: Callable[[dict[str, Any]], None] | None = None,
            cancelled: Callable[[], bool] | None = None, yield_turn: Callable[[], None] | None = None,
            micro_step: MicroStep | None = None) -> Reply:
    """Train a prepared job in its run directory (the leader's part of a job). ``send`` sends its events
    (default ``ctx.emit``), ``cancelled`` says when to stop (default: the request was cancelled);
    ``yield_turn`` and ``micro_step`` go to the training loop."""
    job.run.lock()  # held until this returns: a second job in this run directory is refused
    try:
        return _train_in(job, ctx, parallel=parallel, send=send or ctx.emit,
                         cancelled=cancelled or (lambda: ctx.cancelled), yield_turn=yield_turn,
                         micro_step=micro_step)
    finally:
        job.run.unlock()


def _train_in(job: PreparedJob, ctx: OpContext, *, parallel, send, cancelled, yield_turn, micro_step) -> Reply:
    """The leader's part of a job, holding the run directory's lock."""
    run, body, config, method = job.run, job.body, job.config, job.method
    run.check_unused(resuming=job.resuming, overwrite=job.overwrite)  # again under the lock: a job may have ended meanwhile
    if job.resume is not None:
        _best_on_disk(job.resume, run)
    run.remove_temp_files()  # what a killed worker left half-written
    run.save_rows(job.train_rows, job.eval_rows, job_id=job.job_id)  # a resumed job reads these, not the client's upload
    run.write_job(body)
    trackers = open_trackers(job.report_to, run.path)  # before the event log: a missing package fails the job here
    log = run.events()
    last_checkpoint: list[str] = [body["resume_from"]] if body.get("resume_from") else []
    job_id, keep_last = job.job_id, job.keep_last

    def emit(event: dict[str, Any]) -> None:
        log.write(event)
        if trackers is not None:
            trackers.event(event)
        send(event)

    def save(step: int, metrics: dict[str, float], state) -> str:
        if job_id is not None:
            state.meta["job_id"] = job_id  # run_inspect finds this job's checkpoints by it
        with _keeps_previous(last_checkpoint):
            path = save_checkpoint(run.checkpoint_path(step), method, step=step, metrics=metrics,
                                   training_state=state, root=run.path)
        last_checkpoint.append(str(path))
        _prune(last_checkpoint, keep_last, run.path)
        return str(path)

    def save_best(step: int, metrics: dict[str, float]) -> str:
        with _keeps_previous(last_checkpoint):
            return str(save_checkpoint(run.best_path(), method, step=step, metrics=metrics, root=run.path))

    try:
        emit({"event": "data", **job.report.to_dict()})
        summary = train(method, job.task, config, emit=emit, cancelled=cancelled, save_checkpoint=save,
                        resume=job.resume, parallel=parallel, save_best=save_best, yield_turn=yield_turn,
                        micro_step=micro_step)
    except Exception as exc:  # noqa: BLE001 - logged, then sent as a typed error
        error = from_exception(exc)
        if isinstance(error, OutOfMemoryError) and error is not exc:
            error = _oom_error(exc, config)
        with contextlib.suppress(WorkerError):  # a full disk may refuse the log line too
            log.write({"event": "error", **error.to_body()})
        if error is exc:
            raise
        raise error from exc
    finally:
        log.close()
        if trackers is not None:
            trackers.close()
    return Reply(body={"status": summary["status"], "summary": summary, "checkpoint": summary["checkpoint"],
                       "best": summary["best"]})


@contextlib.contextmanager
def _keeps_previous(last_checkpoint: list[str]):
    """A checkpoint the disk refuses: a ``storage`` error that names the last intact one to resume from."""
    try:
        yield
    except StorageError as exc:
        previous = (f"the previous checkpoint {last_checkpoint[-1]!r} is intact: free space or fix the "
                    "directory, then resume from it") if last_checkpoint else "no earlier checkpoint exists"
        raise StorageError(f"{exc.message}; {previous}", details={
            **(exc.details or {}), "previous_checkpoint": last_checkpoint[-1] if last_checkpoint else None,
        }) from exc


def _keep_last(value: Any) -> int:
    if type(value) is not int or not 0 <= value <= limits.MAX_STEPS:
        raise InvalidArgumentError(f"training.keep_last: expected an integer in 0..{limits.MAX_STEPS} (0 keeps every "
                                   f"checkpoint), got {value!r:.40}")
    return value


def _prune(written: list[str], keep_last: int, run_path) -> None:
    """With ``keep_last`` > 0, delete the checkpoints this job wrote (or resumed from, inside its run
    directory) beyond the newest ``keep_last``; the list keeps only the survivors. Best effort: a file
    that cannot be deleted stays (and is logged)."""
    if keep_last <= 0 or len(written) <= keep_last:
        return
    root = Path(run_path).resolve()
    for old in written[:-keep_last]:
        target = Path(old).resolve()
        if root in target.parents:  # never a resume_from file outside this run
            try:
                target.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("keep_last: could not delete %s: %s", target, exc)
    del written[:-keep_last]


@op("run_inspect")
def run_inspect(req: Request, ctx: OpContext) -> Reply:
    job_id = req.body.get("job_id")
    if job_id is not None and (not isinstance(job_id, str) or not job_id):
        raise InvalidArgumentError(f"job_id: expected a non-empty string, got {job_id!r:.40}")
    return Reply(body=inspect_run(req.body.get("run_dir"), job_id))


def _oom_error(exc: BaseException, config: TrainingConfig) -> OutOfMemoryError:
    """Out of memory while training, with the settings to try. (What the failed step held is freed when
    the server drops the exception, so the worker and its loaded prompts go on serving.)"""
    bs, ga = config.batch_size, config.grad_accumulation
    advice = (f"lower training.batch_size (now {bs}, try {max(1, bs // 2)}) and raise training.grad_accumulation "
              f"(now {ga}) so batch_size x grad_accumulation stays {bs * ga}, or lower training.max_length "
              f"(now {config.max_length})")
    if bs == 1:
        advice = f"lower training.max_length (now {config.max_length}), or use a smaller model or dtype 'bf16'"
    return OutOfMemoryError(f"device out of memory while training at batch_size {config.batch_size}: {exc}; "
                            f"{advice}", details={"advice": advice, "batch_size": config.batch_size,
                                                 "grad_accumulation": config.grad_accumulation})


def model_for_training(spec: ModelSpec, config: TrainingConfig) -> ModelSpec:
    """``training.dtype`` f32 loads a model whose dtype is ``auto`` in f32: on a GPU ``auto`` means bf16
    weights, and f32 training on bf16 weights would be f32 in name only."""
    return replace(spec, dtype="f32") if config.dtype == "f32" and spec.dtype == "auto" else spec


def _best_on_disk(resume, run: RunDir) -> None:
    """A resumed job's best so far is what ``best.pb`` holds when that beats its checkpoint's record: the
    crashed run may have found (and saved) a better evaluation after its last checkpoint, and the file's
    step and metrics describe the prompt that is really in it."""
    chosen = resume.meta.get("selection") or {}
    path = run.best_path()
    if not chosen.get("by") or not path.is_file():
        return
    try:
        record = load_checkpoint(path)
    except WorkerError as exc:
        log.warning("resume: ignoring %s: %s", path, exc.message)
        return
    value = record.metrics.get(chosen["by"])
    best = chosen.get("best")
    if value is None or (best is not None and not better(chosen["by"], value, best["value"])):
        return
    chosen["best"] = {"step": record.step, "metrics": dict(record.metrics), "value": value, "checkpoint": str(path)}


def _method(body: dict[str, Any], method_cls, frozen: FrozenModel):
    """A fresh method, or (when resuming) the checkpoint's method and training state."""
    resume_from = body.get("resume_from")
    if resume_from is None:
        return method_cls(method_cls.config_class.from_dict(body.get("method_config")), frozen), None
    if not isinstance(resume_from, str) or not resume_from:
        raise InvalidArgumentError(f"resume_from: expected a checkpoint path, got {resume_from!r:.60}")
    record = load_checkpoint(resume_from)
    if record.method != body["method"]:
        raise InvalidArgumentError(f"resume_from: {resume_from!r} is a {record.method!r} checkpoint, "
                                   f"not {body['method']!r}")
    if record.training_state is None:
        raise InvalidArgumentError(f"resume_from: {resume_from!r} has no training state (an inference-only export)")
    given = body.get("method_config")
    # Compared as parsed configs: a checkpoint may spell a renamed option by its deprecated alias.
    parse = method_cls.config_class.from_dict
    if given is not None and parse(given) != parse(record.method_config):
        raise InvalidArgumentError("method_config: differs from the checkpoint's; omit it when resuming")
    return build_method_from_checkpoint(record, frozen), record.training_state
