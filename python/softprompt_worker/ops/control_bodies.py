"""The request and reply bodies of the control ops (``ops/control.py``, ``ops/status.py``; proto/WIRE.md,
"Control path"), declared once: the worker parses requests with them (``fields.parse``) and builds replies
from them, and ``make schema`` exports them to JSON Schema and the SDK's zod schemas and types
(docs/schema.md). ``ping``, ``info``, ``status`` and ``shutdown`` take ``{}``; ``ping`` and ``shutdown``
reply ``{}``; ``echo``'s bodies are ``{}``, its tensors come back as they went."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from softprompt_worker.fields import option
from softprompt_worker.serving.clients import MAX_CLIENT_ID_LENGTH
from softprompt_worker.serving.health import STUCK_AFTER_S

VERSION = "its version; null when it cannot be imported"


@dataclass(kw_only=True)
class HelloRequest:
    """Op ``hello``, the first request of every connection."""

    protocol: int = option(doc="the protocol the client speaks; another than the worker's is protocol_version_mismatch")
    client: str | None = option(None, doc="the client's name and version, e.g. softprompt-ts/0.1.0")
    client_id: str = option("", max_length=MAX_CLIENT_ID_LENGTH, sdk={"optional": True},
                            doc="names the client across reconnects (its connections share its prompts); default: "
                                "the anonymous client ''")


@dataclass
class GpuInfo:
    """A GPU the worker can see."""

    name: str = option(doc="the device's name")
    memory_bytes: int = option(ge=0, doc="its total memory")


@dataclass(kw_only=True)
class Capabilities:
    """What the worker can do here (``capabilities.py``): library versions, devices, methods."""

    python: str = option(doc="the Python version")
    torch: str | None = option(doc=VERSION)
    transformers: str | None = option(doc=VERSION)
    peft: str | None = option(doc=VERSION)
    devices: list[str] = option(doc="devices a job can run on: 'cpu', 'cuda:0', ...")
    cuda: bool = option(doc="whether CUDA is available")
    bf16: bool = option(doc="whether bf16 compute is supported on the best device")
    gpus: list[GpuInfo] = option(doc="the GPUs")
    methods: list[str] = option(doc="the soft-prompt methods it offers")
    missing: list[str] | None = option(None, absent=True,
                                       doc="required packages that are missing (absent when none are)")
    install_hint: str | None = option(None, absent=True, doc="how to install what is missing (with missing)")


@dataclass(kw_only=True)
class HelloReply:
    """Op ``hello``'s reply."""

    protocol: int = option(doc="the protocol the worker speaks")
    worker: str = option(doc="the worker's version")
    pid: int = option(doc="the worker's process id")
    capabilities: Capabilities = option(ref="hello_reply_capabilities", doc="what it can do")


@dataclass
class InfoReply:
    """Op ``info``'s reply: the capabilities now."""

    capabilities: Capabilities = option(ref="hello_reply_capabilities", doc="what the worker can do")


@dataclass
class HealthRequest:
    """Op ``health``: whether the compute thread still shows life, which ``ping`` cannot tell."""

    stuck_after_s: float = option(STUCK_AFTER_S, gt=0, doc="silence after which a busy compute thread is stuck")


@dataclass(kw_only=True)
class ComputeSnapshot:
    """What the compute thread does, and when it last showed life (``serving/health.py``)."""

    state: str = option(choices=("idle", "busy"), doc="idle (waiting for work) or busy (running op)")
    op: str | None = option(doc="the op running, when busy")
    request_id: int | None = option(doc="its request id, when busy")
    busy_s: float = option(doc="how long the current op has run (0 when idle)")
    since_beat_s: float = option(doc="time since the compute thread last beat (each second when idle, and on "
                                     "each event or cancel check of a running op)")
    stuck: bool = option(doc="silent past stuck_after_s: stuck, not merely busy")


@dataclass
class HealthReply:
    """Op ``health``'s reply."""

    compute: ComputeSnapshot = option(ref="health_reply_compute", doc="the compute thread")


@dataclass
class CancelRequest:
    """Op ``cancel``: set the cancel flag of this client's open request ``target`` (or of one of its parts)."""

    target: int = option(gt=0, doc="the request's id")
    part: int | None = option(None, ge=0, doc="only this part of it: one job of a train_many, by index")


@dataclass
class CancelReply:
    """Op ``cancel``'s reply; the cancelled request then ends as its op defines."""

    found: bool = option(doc="whether the request was open")


@dataclass(kw_only=True)
class LoadedModel:
    """A frozen base model the worker holds, shared by every job and prompt on it."""

    model: dict[str, Any] = option(doc="the model spec as the worker resolved it")
    device: str = option(doc="where it is")
    dtype: str = option(doc="its dtype")
    bytes: int = option(ge=0, doc="its weights and buffers")


@dataclass(kw_only=True)
class JobStatus:
    """A training job the worker runs or has queued (``serving/scheduler.py``)."""

    request_id: int = option(doc="the train request's id on its client's connection")
    op: str = option(doc="the op ('train')")
    client: str = option(doc="the client that submitted it ('': one that named none)")
    state: str = option(choices=("running", "queued"), doc="running or queued")
    job_id: str | None = option(None, doc="the client's id for the job")
    run_dir: str | None = option(None, doc="its run directory")
    method: str | None = option(None, doc="its method")
    age_s: float = option(doc="time since it was submitted")
    step: int | None = option(None, absent=True, ge=0, doc="the last reported optimizer step, once it has started")
    total_steps: int | None = option(None, absent=True, ge=0, doc="its planned steps, once it has started")
    loss: float | None = option(None, absent=True, doc="the last reported training loss")


@dataclass
class LaneCounts:
    """Requests by lane."""

    inference: int = option(ge=0, doc="inference ops")
    training: int = option(ge=0, doc="training jobs")


@dataclass(kw_only=True)
class DeviceTurns:
    """Who computes now and who waits for a turn (``serving/turns.py``)."""

    holder: str | None = option(None, doc="'inference' or 'train <id>'; null when idle")
    waiting: LaneCounts = option(doc="who waits for a turn")
    handovers: int = option(0, ge=0, doc="times a training job handed the device to waiting work")


@dataclass(kw_only=True)
class MergedCounts:
    """One op's merged runs."""

    runs: int = option(ge=0, doc="merged runs so far")
    requests: int = option(ge=0, doc="requests they answered")


@dataclass(kw_only=True)
class Batching:
    """Cross-request batching of the inference lane (``serving/coalesce.py``)."""

    max_rows: int = option(ge=0, doc="rows a merged run holds at most")
    wait_ms: float = option(ge=0, doc="how long the lane waits for more requests to merge")
    runs: int = option(ge=0, doc="merged runs so far")
    requests: int = option(ge=0, doc="requests they answered")
    ops: dict[str, MergedCounts] = option(factory=dict, doc="the same, per op")


@dataclass(kw_only=True)
class StatusReply:
    """Op ``status``'s reply: what the worker holds and does."""

    models: list[LoadedModel] = option(doc="the base models it holds")
    jobs: list[JobStatus] = option(doc="running jobs first, then queued ones in the order they will start")
    queues: LaneCounts = option(doc="requests waiting: inference ops for the lane, training jobs for a slot")
    device: DeviceTurns = option(doc="who has the device")
    max_training_jobs: int = option(ge=0, doc="training jobs run at once (--max-training-jobs)")
    batching: Batching = option(sdk={"optional": True}, doc="cross-request batching (absent from older workers)")
    compute: ComputeSnapshot = option(ref="health_reply_compute", doc="the compute thread")


BODIES = {"hello_request": HelloRequest, "hello_reply": HelloReply, "hello_reply_capabilities": Capabilities,
          "info_reply": InfoReply, "health_request": HealthRequest, "health_reply": HealthReply,
          "health_reply_compute": ComputeSnapshot, "cancel_request": CancelRequest, "cancel_reply": CancelReply,
          "status_reply": StatusReply}
