"""Control ops, answered inline by the socket loop even while a job runs (see proto/WIRE.md).

hello, ping, health, info, echo, cancel, shutdown. None of them imports torch except through `capabilities`.
"""

from __future__ import annotations

import os

from softprompt_worker import PROTOCOL_VERSION, __version__
from softprompt_worker.capabilities import capabilities
from softprompt_worker.serving.clients import MAX_CLIENT_ID_LENGTH, client_directory
from softprompt_worker.errors import InvalidArgumentError, ProtocolVersionMismatchError
from softprompt_worker.serving.health import STUCK_AFTER_S
from softprompt_worker.serving.handlers import OpContext, Reply, Request, op


@op("hello", control=True)
def hello(req: Request, ctx: OpContext) -> Reply:
    """{"protocol": 1, "client": str, "client_id"?: str} -> {"protocol", "worker", "pid", "capabilities"}.

    ``client_id`` names the client across reconnects (its connections' requests share its prompts,
    ``clients.py``); without it the connection belongs to the anonymous client ``""``.
    """
    protocol = req.body.get("protocol")
    if type(protocol) is not int:
        raise InvalidArgumentError(f"hello: body.protocol must be an integer, got {protocol!r:.40}")
    if protocol != PROTOCOL_VERSION:
        raise ProtocolVersionMismatchError(
            f"client speaks protocol {protocol}; this worker ({__version__}) speaks {PROTOCOL_VERSION}. "
            "Install matching versions of the SDK and softprompt-worker.",
            details={"worker": PROTOCOL_VERSION, "client": protocol})
    client_id = req.body.get("client_id", "")
    if not isinstance(client_id, str) or len(client_id) > MAX_CLIENT_ID_LENGTH:
        raise InvalidArgumentError(f"hello: body.client_id must be a string of at most {MAX_CLIENT_ID_LENGTH} "
                                   f"characters, got {client_id!r:.40}")
    client_directory(ctx.state).register(ctx.peer, client_id)
    return Reply(body={"protocol": PROTOCOL_VERSION, "worker": __version__, "pid": os.getpid(),
                       "capabilities": capabilities()})


@op("ping", control=True)
def ping(req: Request, ctx: OpContext) -> Reply:
    """{} -> {}."""
    return Reply()


@op("health", control=True)
def health(req: Request, ctx: OpContext) -> Reply:
    """{"stuck_after_s"?: number} -> {"compute": {"state": "idle"|"busy", "op", "request_id", "busy_s",
    "since_beat_s", "stuck"}}: whether the compute thread still shows life (`health.py`), which `ping`
    (answered by the socket loop) cannot tell."""
    stuck_after_s = req.body.get("stuck_after_s", STUCK_AFTER_S)
    if isinstance(stuck_after_s, bool) or not isinstance(stuck_after_s, (int, float)) or not stuck_after_s > 0:
        raise InvalidArgumentError(f"health: body.stuck_after_s must be a positive number, got {stuck_after_s!r:.40}")
    return Reply(body={"compute": ctx.state.compute.snapshot(float(stuck_after_s))})


@op("info", control=True)
def info(req: Request, ctx: OpContext) -> Reply:
    """{} -> {"capabilities": {...}}."""
    return Reply(body={"capabilities": capabilities()})


@op("echo", control=True)
def echo(req: Request, ctx: OpContext) -> Reply:
    """{} with tensors -> {} with the same tensors, bit for bit (the frames are sent back zero-copy)."""
    return Reply(tensors={name: (array, req.dtypes[name]) for name, array in req.tensors.items()})


@op("cancel", control=True)
def cancel(req: Request, ctx: OpContext) -> Reply:
    """{"target": id, "part"?: index} -> {"found": bool}: sets the cancel flag of this client's open request
    `target`, or with ``part`` only that part's (one job of a ``train_many``)."""
    target = req.body.get("target")
    if type(target) is not int or target < 1:
        raise InvalidArgumentError(f"cancel: body.target must be a request id (integer >= 1), got {target!r:.40}")
    part = req.body.get("part")
    if part is not None and (type(part) is not int or part < 0):
        raise InvalidArgumentError(f"cancel: body.part must be a part index (integer >= 0), got {part!r:.40}")
    return Reply(body={"found": ctx.state.requests.cancel(ctx.peer, target, part)})


@op("shutdown", control=True)
def shutdown(req: Request, ctx: OpContext) -> Reply:
    """{} -> {}; the worker then stops serving and exits 0."""
    ctx.state.shutdown.set()
    return Reply()
