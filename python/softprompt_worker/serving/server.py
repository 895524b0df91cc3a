"""The socket loop: receive, validate, dispatch, reply (protocol: proto/WIRE.md). No ML imports.

Threads:
- main: owns the ROUTER (nothing else touches it). Blocks in `recv` on that one socket; answers control
  ops inline; queues every other op for the compute thread; forwards what the `Outbox` sends.
- compute: the inference lane (queued inference ops, in arrival order) and one thread per running
  training job, taking turns on the device (`scheduler.py`, `turns.py`): inference is served between a
  job's micro-batches. Their events and replies are encoded there and sent by the `Outbox`, a DEALER
  connected to the ROUTER over inproc under the routing id `OUTBOX_ID`, so a slow `.cpu()` of a result
  never stalls the loop. The ROUTER fair-queues the outbox with the clients, and the loop needs no
  poller: one blocking `recv` serves both.
- parent watcher (optional): stops the worker when the parent process dies.
- ZAP handler (with CURVE, `auth.py`): admits only the listed client keys.

Two uses: the worker the SDK starts for one client (ipc in a 0700 folder, or TCP with a CURVE key pair
made for it; `check_endpoint` refuses, without CURVE, anything but loopback TCP and a 0700-folder ipc path), and a shared worker (`softprompt-worker serve`, ``shared=True``) that waits for
several clients, usually over TCP with CURVE. A shared worker serves compute ops only to connections that
said `hello` (so each request belongs to a known client, `clients.py`), refuses `shutdown` from clients
(it is stopped on its host), and drops silent clients by ZMTP heartbeats.

Hot path (a small request, e.g. `ping`): the routing id and header arrive as `bytes` (copying a few
bytes beats building a `zmq.Frame`; a header over `Limits.max_header_bytes` is copied once, then
refused); tensor frames arrive as `zmq.Frame`s, read in place (zero-copy). bench/ipc measures it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import zmq

from softprompt_worker.serving.auth import CurveServer, check_endpoint
from softprompt_worker.serving.clients import MAX_CONNECTIONS, client_directory
from softprompt_worker.errors import (
    CancelledError,
    InternalError,
    InvalidArgumentError,
    MalformedMessageError,
    UnknownOpError,
    WorkerError,
    from_exception,
)
from softprompt_worker.serving.handlers import (CancelFlag, OpContext, OpSpec, Reply, Request, WorkerState, get_op,
                                                registered_ops)
from softprompt_worker.serving.coalesce import MAX_BATCH_ROWS
from softprompt_worker.serving.merged import run_merged
from softprompt_worker.serving.process import announce, process_alive
from softprompt_worker.serving.scheduler import MAX_TRAINING_JOBS, Job, Scheduler
from softprompt_worker.serving.protocol import DecodeFailure, Limits, Message, decode, encode, error_message
from softprompt_worker.tensors import to_wire

log = logging.getLogger("softprompt_worker")

OUTBOX_ADDR = "inproc://softprompt-outbox"
#: The outbox's routing id on the ROUTER. Claimed before any client can connect, and a ROUTER refuses a
#: second peer with a routing id in use, so no client can pose as the outbox.
OUTBOX_ID = b"\x00softprompt-outbox"
POLL_MS = 200  # how often the loop re-checks the shutdown flag when idle (the ROUTER's receive timeout)
SHUTDOWN_LINGER_MS = 2000  # time given to queued outgoing messages (the shutdown reply) to leave
HEARTBEAT_IVL_MS = 2000  # shared workers ping each client connection this often...
HEARTBEAT_TIMEOUT_MS = 6000  # ...and drop it when nothing came back for this long
REVOKE_CLOSE_DELAY_S = 0.2  # a revoked client's connection is shut down this long after its last replies
MAX_UNREAD_MESSAGES = 10_000  # replies and events queued for one client connection at most (SNDHWM)
#: The cancel flag of every control op: they are answered inline, never queued, so `cancel` cannot reach
#: them (and building a `threading.Event` per ping costs more than the rest of its dispatch).
_NEVER_CANCELLED = threading.Event()


def _shutdown_fd(fd: int) -> None:
    """Shut down the connection on libzmq's socket `fd` (a dup is shut down: the same connection)."""
    import socket

    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return  # already closed
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.close()


def _imports_done() -> None:
    """Wait for the start-up imports (`capabilities`, run in the background by `__main__`): a compute op
    that imports transformers while they run could get a half-imported module. Cached after the first."""
    from softprompt_worker.capabilities import capabilities

    capabilities()


def reply_frames(id_: int, op: str, kind: str, reply: Reply) -> list[Any]:
    """Encode a handler's `reply` (or event) as frames. Tensor values: numpy, torch, or
    (numpy array, wire dtype) for bf16 bits. Raises if the body or a tensor cannot be sent."""
    tensors = []
    for name, value in reply.tensors.items():
        array, dtype = value if isinstance(value, tuple) else (value, None)
        tensors.append(to_wire(name, array, dtype))
    return encode(Message(id=id_, kind=kind, op=op, body=reply.body, tensors=tensors))


def error_frames(id_: int, op: str, exc: BaseException) -> list[Any]:
    """Encode any exception as an `error` message; unexpected ones are logged with their traceback."""
    err = from_exception(exc)
    if err.code == "internal" and not isinstance(exc, WorkerError):
        log.error("request %d (%s) failed", id_, op or "?", exc_info=exc)
    try:
        return encode(error_message(id_, op, err))
    except Exception:  # noqa: BLE001 - details that cannot be encoded: send the bare error
        return encode(error_message(id_, op, InternalError(str(err.message))))


class Outbox:
    """Thread-safe sender into the main loop: a DEALER connected to the ROUTER's inproc endpoint,
    whose messages `[peer, *frames]` the loop forwards to `peer`."""

    def __init__(self, context: zmq.Context) -> None:
        self._dealer = context.socket(zmq.DEALER)
        self._dealer.setsockopt(zmq.ROUTING_ID, OUTBOX_ID)
        self._dealer.connect(OUTBOX_ADDR)
        self._lock = threading.Lock()

    def send(self, peer: bytes, frames: list[Any]) -> None:
        with self._lock:
            self._dealer.send_multipart([peer, *frames], copy=False)

    def close(self) -> None:
        with self._lock:
            self._dealer.close(linger=0)


class Server:
    """One worker: bind, announce, serve until `shutdown`, SIGTERM/SIGINT or the parent's death."""

    def __init__(self, endpoint: str, *, limits: Limits = Limits(), parent_pid: int | None = None,
                 max_queued: int = 1024, state: WorkerState | None = None, curve: CurveServer | None = None,
                 shared: bool = False, max_unread_messages: int = MAX_UNREAD_MESSAGES,
                 max_training_jobs: int = MAX_TRAINING_JOBS, schedule: str = "turns",
                 max_batch_rows: int = MAX_BATCH_ROWS, batch_wait_ms: float = 0.0) -> None:
        check_endpoint(endpoint, curve=curve is not None)
        self.endpoint = endpoint
        self.limits = limits
        self.parent_pid = parent_pid
        self.max_queued = max_queued
        self.max_unread_messages = max_unread_messages
        self.state = state or WorkerState()
        self.curve = curve
        self.shared = shared
        self._clients = client_directory(self.state)
        self._context = zmq.Context()
        self._scheduler = Scheduler(self.state, self._compute, self._answer, run_merged=self._run_merged,
                                    max_queued=max_queued, max_training_jobs=max_training_jobs, schedule=schedule,
                                    max_batch_rows=max_batch_rows, batch_wait_s=batch_wait_ms / 1000)
        # CURVE only: each connection's client key and socket fd (from its messages), the connections
        # whose key was revoked (their messages are dropped both ways), and a SIGHUP not yet acted on.
        self._peer_keys: dict[bytes, tuple[bytes | None, int]] = {}
        self._revoked: set[bytes] = set()
        self._revoke_pending = False

    # ------------------------------------------------------------------------------ lifecycle

    def run(self) -> int:
        """Serve until stopped; returns the process exit code (0 on a clean shutdown)."""
        self._install_signal_handlers()
        router = self._context.socket(zmq.ROUTER)
        # Back-pressure: at most `max_unread_messages` replies and events wait for one client connection.
        # With ROUTER_MANDATORY a full queue is an error (not a silent drop), and `_send` then drops that
        # client: one that never reads cannot make the worker queue without bound.
        router.setsockopt(zmq.SNDHWM, self.max_unread_messages)
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        router.setsockopt(zmq.LINGER, SHUTDOWN_LINGER_MS)
        router.setsockopt(zmq.RCVTIMEO, POLL_MS)
        if self.shared:
            router.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)
            router.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
        if self.curve is not None:
            self.curve.start(self._context)
            self.curve.apply(router)  # inproc peers (the outbox) skip the handshake
        router.bind(OUTBOX_ADDR)
        router.bind(self.endpoint)
        bound = router.getsockopt(zmq.LAST_ENDPOINT).decode()
        self._outbox = Outbox(self._context)  # connects (claims OUTBOX_ID) before any client knows `bound`
        self._scheduler.start()
        if self.parent_pid:
            threading.Thread(target=self._watch_parent, name="parent-watcher", daemon=True).start()
        log.info("listening on %s (pid %d); ops: %s", bound, os.getpid(), ", ".join(registered_ops()))
        if self.curve is not None and self.curve.allowed.folder is not None:
            log.info("CURVE on: %d allowed client keys in %s (SIGHUP re-reads them)",
                     len(self.curve.allowed), self.curve.allowed.folder)
        announce(bound)
        try:
            self._loop(router)
        finally:
            self._stop_compute()
            self._drain(router)  # forward the replies the compute thread finished meanwhile
            self._outbox.close()
            router.close()  # lingers so the shutdown reply leaves
            if self.curve is not None:
                self.curve.stop()
            self._context.term()
        log.info("stopped")
        return 0

    def stop(self) -> None:
        """Ask the loop to stop (any thread, or a signal handler)."""
        self.state.shutdown.set()

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        def on_signal(signum: int, frame: Any) -> None:
            log.info("signal %d: stopping", signum)
            self.stop()

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)
        if self.curve is not None and self.curve.allowed.folder is not None and hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, lambda signum, frame: self.reload_keys())

    def reload_keys(self) -> None:
        """Re-read the allowed client keys (SIGHUP); a bad folder keeps the current keys. The loop then
        closes revoked clients' connections within `POLL_MS` + `REVOKE_CLOSE_DELAY_S` (`_revoke`)."""
        assert self.curve is not None
        try:
            count = self.curve.allowed.reload()
            log.info("allowed client keys reloaded: %d%s", count, " (nobody can connect)" if not count else "")
        except ValueError as exc:
            log.error("allowed client keys not reloaded (the current ones stay): %s", exc)
        self._revoke_pending = True

    def _admit(self, peer: bytes, frame: zmq.Frame) -> bool:
        """Whether `peer`'s message may be served (not dropped; with CURVE, its key is still allowed).
        Records the connection's key and fd, so a revocation or a full reply queue can close it."""
        if peer in self._revoked:
            return False
        key = None
        if self.curve is not None:
            key = frame.get("User-Id").encode("ascii")  # the ZAP handler's user id: the client's Z85 public key
            if key not in self.curve.allowed:
                self._revoked.add(peer)
                return False
        if peer not in self._peer_keys:
            if len(self._peer_keys) >= MAX_CONNECTIONS:  # bounded: the oldest connection is forgotten
                del self._peer_keys[next(iter(self._peer_keys))]
            self._peer_keys[peer] = (key, frame.get(zmq.SRCFD))
        return True

    def _revoke(self, router: zmq.Socket) -> None:
        """Close the connections of clients whose key is no longer allowed: their open requests are
        cancelled and answered with error `cancelled`, later messages both ways are dropped, and the
        socket is shut down so the client sees a disconnect (its reconnect then fails the handshake)."""
        self._revoke_pending = False
        for peer, (key, fd) in list(self._peer_keys.items()):
            if key is None or key in self.curve.allowed:
                continue
            del self._peer_keys[peer]
            for request_id in self.state.requests.of_peer(peer):
                self.state.requests.cancel(peer, request_id)
                err = CancelledError(f"request {request_id}: this client's key was revoked on the server")
                self._send(router, [peer, *error_frames(request_id, "", err)])
            self._revoked.add(peer)
            self._clients.forget(peer)
            # a moment for the `cancelled` replies to leave, then the connection goes (the client also fails
            # its open requests on the disconnect, should a reply not make it)
            threading.Timer(REVOKE_CLOSE_DELAY_S, _shutdown_fd, (fd,)).start()
            log.warning("closed a connection of revoked client key %s", key.decode("ascii", "replace"))

    def _stop_compute(self) -> None:
        # Cancel what runs, drop what waits; the threads are daemons, so a stuck op cannot hold exit.
        for event in self.state.requests.all_cancel_events():
            event.set()
        for job in self._scheduler.stop(timeout=5):
            self.state.requests.remove(job.peer, job.request.id)

    def _watch_parent(self) -> None:
        assert self.parent_pid
        original_ppid = os.getppid()
        while not self.state.shutdown.wait(0.5):
            if not process_alive(self.parent_pid) or (original_ppid == self.parent_pid and os.getppid() != original_ppid):
                log.warning("parent process %d is gone: stopping", self.parent_pid)
                self.stop()
                time.sleep(10)  # a clean stop should be over by now; otherwise leave no orphan
                log.error("clean stop took too long: exiting")
                os._exit(1)

    # ------------------------------------------------------------------------------ main thread

    def _loop(self, router: zmq.Socket) -> None:
        shutdown = self.state.shutdown
        track = self.curve is not None or self.shared  # per-connection keys and fds (`_admit`)
        while not shutdown.is_set():
            if self._revoke_pending:
                self._revoke(router)
            try:
                peer = router.recv()  # blocks up to POLL_MS
            except zmq.Again:
                continue
            if peer == OUTBOX_ID:
                frames = router.recv_multipart(copy=False)
                if not self._revoked or frames[0].bytes not in self._revoked:
                    self._send(router, frames)
                continue
            if track and router.getsockopt(zmq.RCVMORE):
                frame = router.recv(copy=False)
                rest = router.recv_multipart(copy=False) if router.getsockopt(zmq.RCVMORE) else ()
                if self._admit(peer, frame):
                    self._handle(router, peer, frame.bytes, rest)
                continue
            header = router.recv() if router.getsockopt(zmq.RCVMORE) else None
            tensors = router.recv_multipart(copy=False) if router.getsockopt(zmq.RCVMORE) else ()
            self._handle(router, peer, header, tensors)

    def _drain(self, router: zmq.Socket) -> None:
        """Forward what the outbox has sent; what clients sent after the shutdown is left unanswered."""
        while True:
            try:
                peer = router.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            frames = router.recv_multipart(copy=False) if router.getsockopt(zmq.RCVMORE) else []
            if peer == OUTBOX_ID:
                self._send(router, frames)

    def _handle(self, router: zmq.Socket, peer: bytes, header: bytes | None, tensors: Sequence[zmq.Frame]) -> None:
        """One incoming message. Never raises: every problem becomes an error reply (or a log line)."""
        id_, op = 0, ""
        try:
            msg = decode([header, *tensors] if header is not None else [], self.limits)
            id_, op = msg.id, msg.op
            if msg.kind != "request":
                raise MalformedMessageError(f"header.kind must be 'request' for a message to the worker, got {msg.kind!r}")
            spec = get_op(msg.op)
            if spec is None:
                raise UnknownOpError(f"unknown op {msg.op!r:.80}; this worker knows: {', '.join(registered_ops())}")
            if msg.tensors:
                request = Request(id=msg.id, op=msg.op, body=msg.body,
                                  tensors={t.name: t.array for t in msg.tensors},
                                  dtypes={t.name: t.dtype for t in msg.tensors})
            else:
                request = Request(id=msg.id, op=msg.op, body=msg.body, tensors={}, dtypes={})
            if spec.control:
                if self.shared and msg.op == "shutdown":
                    raise InvalidArgumentError("shutdown: this worker is shared by its clients (softprompt-worker "
                                               "serve); stop it on its host (SIGTERM or Ctrl-C)")
                ctx = OpContext(msg.id, msg.op, self.state, self._emit_for(peer), _NEVER_CANCELLED, peer=peer)
                out = reply_frames(msg.id, msg.op, "reply", spec.handler(request, ctx))
            else:
                self._enqueue(peer, spec, request)
                return
        except DecodeFailure as failure:
            out = error_frames(failure.id, failure.op, failure.error)
        except Exception as exc:  # noqa: BLE001 - nothing a client sends may stop the loop
            out = error_frames(id_, op, exc)
        self._send(router, [peer, *out])

    def _send(self, router: zmq.Socket, frames: list[Any]) -> None:
        """Send `[peer, *message]`; a client gone meanwhile loses it, a client whose queue is full
        (`max_unread_messages` unread: it does not read) is dropped (`_drop_unread`)."""
        try:
            router.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            self._drop_unread(router, frames[0] if isinstance(frames[0], bytes) else frames[0].bytes)
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH:  # the connection closed: nobody to tell
                raise

    def _drop_unread(self, router: zmq.Socket, peer: bytes) -> None:
        """A client left `max_unread_messages` replies and events unread: cancel its requests, drop what
        the worker would still send it, and close its connection (where the worker knows its socket)."""
        if peer in self._revoked:
            return
        self._revoked.add(peer)
        for request_id in self.state.requests.of_peer(peer):
            self.state.requests.cancel(peer, request_id)
        self._clients.forget(peer)
        _, fd = self._peer_keys.pop(peer, (None, -1))
        if fd >= 0:
            _shutdown_fd(fd)
        log.warning("dropped a client that left %d messages unread (--max-unread-messages); its requests are "
                    "cancelled", self.max_unread_messages)

    def _enqueue(self, peer: bytes, spec: OpSpec, request: Request) -> None:
        client = self._clients.client_of(peer)
        if client is None and self.shared:
            raise InvalidArgumentError(f"{request.op}: say hello first; a shared worker serves a connection's "
                                       "requests once its hello named the client")
        cancel_event = CancelFlag()
        if not self.state.requests.add(peer, request.id, cancel_event):
            raise MalformedMessageError(f"header.id {request.id} is already used by an open request")
        state = self.state if not client else self.state.for_client(client)
        ctx = OpContext(request.id, request.op, state, self._emit_for(peer), cancel_event, peer=peer)
        try:
            self._scheduler.submit(Job(peer, spec, request, ctx, client=client or ""))
        except Exception:
            self.state.requests.remove(peer, request.id)
            raise

    def _emit_for(self, peer: bytes):
        def emit(id_: int, op: str, body: dict[str, Any], tensors: dict[str, Any]) -> None:
            self._outbox.send(peer, reply_frames(id_, op, "event", Reply(body=body, tensors=tensors)))

        return emit

    # ------------------------------------------------------------------------------ compute threads

    def _compute(self, job: Job) -> Reply | Exception:
        """Run one op on the calling compute thread (the scheduler's); its reply or its error. Never raises."""
        req, monitor = job.request, self.state.compute
        monitor.started(req.op, req.id)
        try:
            _imports_done()
            if job.ctx.cancelled:
                raise CancelledError(f"request {req.id} ({req.op}) was cancelled before it started")
            outcome: Reply | Exception = job.spec.handler(req, job.ctx)
        except Exception as exc:  # noqa: BLE001 - reported to the client, the thread goes on
            outcome = exc
        finally:
            monitor.finished()
        return outcome

    def _run_alone(self, job: Job) -> None:
        self._answer(job, self._compute(job))

    def _run_merged(self, jobs: list[Job], counted: Callable[[int], None]) -> None:
        """Run requests that coalesce as one and answer each (`merged.py`). Never raises."""
        try:
            _imports_done()
        except Exception:  # noqa: BLE001 - each member alone reports it
            for job in jobs:
                self._run_alone(job)
            return
        run_merged(jobs, self._run_alone, self._answer, counted)

    def _answer(self, job: Job, outcome: Reply | Exception) -> None:
        """Send `job` its reply or its error, and forget the request. Never raises."""
        req = job.request
        try:
            out = reply_frames(req.id, req.op, "reply", outcome) if isinstance(outcome, Reply) else None
        except Exception as exc:  # noqa: BLE001 - a reply that cannot be encoded is an error for its caller
            outcome, out = exc, None
        if out is None:
            out = error_frames(req.id, req.op, outcome)
        self.state.requests.remove(job.peer, req.id)
        try:
            self._outbox.send(job.peer, out)
        except zmq.ZMQError as exc:  # the context is closing: the worker is stopping
            log.warning("reply to request %d dropped: %s", req.id, exc)
