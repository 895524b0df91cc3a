"""The handler contract: the request/reply values a handler sees, its per-request context, the shared
worker state, and the table ``@op`` registers handlers into.

An op module registers handlers with `@op`; `softprompt_worker.ops.OP_MODULES` lists the modules the
worker imports at start. A handler has the signature `handler(req: Request, ctx: OpContext) -> Reply`
and raises `softprompt_worker.errors.WorkerError` subclasses for expected failures (any other exception
becomes an `internal` error). `control=True` ops are answered inline by the socket loop and must be
quick; `training=True` ops (``train``) run as jobs that share the device with everything else, calling
``ctx.yield_turn()`` between their steps; all others run on the inference lane in arrival order
(``scheduler.py``).

    from softprompt_worker.serving.handlers import op, Reply

    @op("add_one")
    def add_one(req, ctx):
        x = req.tensors["x"]                      # read-only numpy view of the frame
        ctx.emit({"progress": 0.5})               # an `event` for this request
        if ctx.cancelled:
            raise CancelledError("add_one cancelled")
        return Reply(tensors={"y": x + 1})
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import numpy as np

from softprompt_worker.serving.coalesce import Coalesce
from softprompt_worker.serving.health import ComputeMonitor

if TYPE_CHECKING:  # torch is imported lazily by the code that converts tensors
    import torch

    TensorLike = np.ndarray | torch.Tensor

T = TypeVar("T")


@dataclass
class Request:
    """A decoded request. `tensors` are zero-copy, read-only numpy views of the frames
    (bf16 arrives as `uint16` bits; `softprompt_worker.tensors.to_torch` reinterprets them)."""

    id: int
    op: str
    body: dict[str, Any]
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    #: wire dtype per tensor name ("f32", "bf16", ...), needed where numpy cannot say (bf16).
    dtypes: dict[str, str] = field(default_factory=dict)


@dataclass
class Reply:
    """A handler's result. A tensor value is a torch tensor (any device; moved to CPU and made
    contiguous; bf16 sent as its raw bits), a numpy array, or a `(numpy array, wire dtype)` pair where
    numpy cannot name the dtype (bf16 bits as uint16)."""

    body: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, Any] = field(default_factory=dict)


class CancelFlag(threading.Event):
    """A request's cancel flag. A request made of parts (``train_many``: one part per job) can also have
    single parts cancelled: their indices are in ``parts``."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: set[int] = set()


class OpenRequests:
    """The compute requests queued or running, by (peer, id): what `cancel` can reach. Thread-safe."""

    def __init__(self) -> None:
        self._events: dict[tuple[bytes, int], threading.Event] = {}
        self._lock = threading.Lock()

    def add(self, peer: bytes, request_id: int, cancel_event: threading.Event) -> bool:
        """Track a request; False if that peer already has an open request with this id."""
        with self._lock:
            if (peer, request_id) in self._events:
                return False
            self._events[(peer, request_id)] = cancel_event
            return True

    def remove(self, peer: bytes, request_id: int) -> None:
        with self._lock:
            self._events.pop((peer, request_id), None)

    def cancel(self, peer: bytes, request_id: int, part: int | None = None) -> bool:
        """Set the request's cancel flag (or only its part ``part``'s); False if it is not open."""
        with self._lock:
            event = self._events.get((peer, request_id))
            if event is None:
                return False
            if part is None:
                event.set()
            elif isinstance(event, CancelFlag):
                event.parts.add(part)
        return True

    def of_peer(self, peer: bytes) -> list[int]:
        """The ids of `peer`'s open requests."""
        with self._lock:
            return [request_id for (p, request_id) in self._events if p == peer]

    def all_cancel_events(self) -> list[threading.Event]:
        with self._lock:
            return list(self._events.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)


class WorkerState:
    """Per-process state shared by all ops: a generic `cache` that other modules hang objects on
    (loaded models, jobs, ...), the open requests, and the shutdown flag. Thread-safe.

    `client` names the client a request comes from (``clients.py``); the state an op sees is
    ``for_client(...)`` of the worker's one state, so per-client caches (loaded prompts) can tell clients
    apart while everything else stays shared."""

    def __init__(self) -> None:
        self.cache: dict[Any, Any] = {}
        self.requests = OpenRequests()
        self.shutdown = threading.Event()
        self.compute = ComputeMonitor()  # the compute thread's heartbeat (`health`)
        self.scheduler: Any = None  # the server's `Scheduler` (scheduler.py): what runs and waits (`status`)
        self._lock = threading.RLock()
        self.client = ""  # the anonymous client: requests that named none, and code outside requests

    def for_client(self, client: str) -> WorkerState:
        """This state as one client's requests see it: the same cache, requests, flag and lock."""
        view = copy.copy(self)
        view.client = client
        return view

    def get_or_create(self, key: Any, factory: Callable[[], T]) -> T:
        """Return `cache[key]`, creating it with `factory()` once (under the state lock)."""
        with self._lock:
            if key not in self.cache:
                self.cache[key] = factory()
            return self.cache[key]

    def entries(self, prefix: str) -> list[tuple[tuple, Any]]:
        """The cache's ``(key, value)`` pairs whose tuple key starts with `prefix`. Lock-free (a dict copy
        is atomic under the GIL), so a control op can ask while `get_or_create` loads a model."""
        return [(k, v) for k, v in self.cache.copy().items() if isinstance(k, tuple) and k and k[0] == prefix]

    def get_or_create_recent(self, key: tuple, factory: Callable[[], T], limit: int) -> T:
        """`get_or_create` for a bounded group of entries: the tuple keys that share `key[0]`. A hit
        becomes the group's most recent entry; a miss that makes the group exceed `limit` drops its least
        recently used entries (whoever still holds one keeps it alive)."""
        with self._lock:
            if key in self.cache:
                self.cache[key] = self.cache.pop(key)  # dicts keep insertion order: now the newest
                return self.cache[key]
            value = self.cache[key] = factory()
            group = [k for k in self.cache if isinstance(k, tuple) and k and k[0] == key[0]]  # oldest first
            for old in group[:max(0, len(group) - limit)]:
                del self.cache[old]
            return value


EmitFn = Callable[[int, str, dict[str, Any], dict[str, Any]], None]


class OpContext:
    """What a handler may use besides its request: events, cancellation, shared state."""

    def __init__(
        self,
        request_id: int,
        op: str,
        state: WorkerState,
        emit_fn: EmitFn,
        cancel_event: threading.Event | None = None,
        peer: bytes = b"",
    ) -> None:
        self.request_id = request_id
        self.peer = peer  # the client's routing identity: ids are unique per client
        self.op = op
        self.state = state
        self.cancel_event = cancel_event if cancel_event is not None else CancelFlag()
        self._emit_fn = emit_fn
        self._yield_fn: Callable[[], None] = _no_yield  # set by the scheduler for a training op

    def yield_turn(self) -> None:
        """Between two steps of a long op: let waiting work use the device, then continue. Quick (one
        read) when nothing waits; the op's own random state is kept across what runs meanwhile."""
        self._yield_fn()

    def emit(self, body: dict[str, Any], tensors: dict[str, Any] | None = None) -> None:
        """Send an `event` for this request. Thread-safe; the socket loop does the sending."""
        self.state.compute.beat()
        self._emit_fn(self.request_id, self.op, body, tensors or {})

    @property
    def cancelled(self) -> bool:
        """True once a `cancel` request named this request's id (asking is a sign of life: a heartbeat)."""
        self.state.compute.beat()
        return self.cancel_event.is_set()

    def part_cancelled(self, part: int) -> bool:
        """True once this request, or its part ``part`` alone (``cancel`` with ``part``), was cancelled."""
        return self.cancelled or part in getattr(self.cancel_event, "parts", ())


def _no_yield() -> None:
    pass


Handler = Callable[[Request, OpContext], Reply]


@dataclass(frozen=True)
class OpSpec:
    name: str
    handler: Handler
    control: bool
    training: bool = False  # a long job that yields its turn on the device between steps (scheduler.py)
    coalesce: Coalesce | None = None  # how concurrent requests merge into one run (coalesce.py)
    # training: ``admission(body, state) -> reason to wait | None``, asked before the job starts beside
    # running ones (scheduler.py; planner/admission.py: memory on CUDA)
    admission: Callable[[dict[str, Any], "WorkerState"], str | None] | None = None


_OPS: dict[str, OpSpec] = {}


def op(name: str, *, control: bool = False, training: bool = False, coalesce: Coalesce | None = None,
       admission: Callable[[dict[str, Any], WorkerState], str | None] | None = None) -> Callable[[Handler], Handler]:
    """Register `handler(req, ctx) -> Reply` under `name`. Registering a name twice is an error."""
    if control and training:
        raise ValueError(f"op {name!r}: a control op is answered inline and cannot be a training job")

    def register(handler: Handler) -> Handler:
        if name in _OPS:
            raise ValueError(f"op {name!r} is already registered by {_OPS[name].handler.__module__}")
        _OPS[name] = OpSpec(name, handler, control, training, coalesce, admission)
        return handler

    return register


def get_op(name: str) -> OpSpec | None:
    """The registered op called `name`, or None."""
    return _OPS.get(name)


def registered_ops() -> list[str]:
    """Names of all registered ops, sorted."""
    return sorted(_OPS)
