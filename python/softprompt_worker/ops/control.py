"""Control ops, answered inline by the socket loop even while a job runs (see proto/WIRE.md).

hello, ping, health, info, echo, cancel, shutdown. None of them imports torch except through `capabilities`.
Their bodies are declared once in ``ops/control_bodies.py``, exported to ``proto/schema/`` and the SDK
(docs/schema.md).
"""

from __future__ import annotations

import os

from softprompt_worker import PROTOCOL_VERSION, __version__
from softprompt_worker.capabilities import capabilities
from softprompt_worker.errors import ProtocolVersionMismatchError
from softprompt_worker.fields import build, parse, to_body
from softprompt_worker.ops.control_bodies import (CancelReply, CancelRequest, Capabilities, HealthReply, HealthRequest,
                                                   HelloReply, HelloRequest, InfoReply)
from softprompt_worker.serving.clients import client_directory
from softprompt_worker.serving.handlers import OpContext, Reply, Request, op


@op("hello", control=True)
def hello(req: Request, ctx: OpContext) -> Reply:
    """``HelloRequest`` -> ``HelloReply``. ``client_id`` names the client across reconnects (its connections'
    requests share its prompts, ``clients.py``); without it the connection belongs to the anonymous client ``""``.
    """
    body = parse(HelloRequest, req.body)
    if body.protocol != PROTOCOL_VERSION:
        raise ProtocolVersionMismatchError(
            f"client speaks protocol {body.protocol}; this worker ({__version__}) speaks {PROTOCOL_VERSION}. "
            "Install matching versions of the SDK and softprompt-worker.",
            details={"worker": PROTOCOL_VERSION, "client": body.protocol})
    client_directory(ctx.state).register(ctx.peer, body.client_id)
    return Reply(body=to_body(HelloReply(protocol=PROTOCOL_VERSION, worker=__version__, pid=os.getpid(),
                                         capabilities=build(Capabilities, capabilities()))))


@op("ping", control=True)
def ping(req: Request, ctx: OpContext) -> Reply:
    """{} -> {}."""
    return Reply()


@op("health", control=True)
def health(req: Request, ctx: OpContext) -> Reply:
    """``HealthRequest`` -> ``HealthReply``: whether the compute thread still shows life (`health.py`), which
    `ping` (answered by the socket loop) cannot tell."""
    body = parse(HealthRequest, req.body)
    return Reply(body=to_body(build(HealthReply, {"compute": ctx.state.compute.snapshot(float(body.stuck_after_s))})))


@op("info", control=True)
def info(req: Request, ctx: OpContext) -> Reply:
    """{} -> ``InfoReply``."""
    return Reply(body=to_body(build(InfoReply, {"capabilities": capabilities()})))


@op("echo", control=True)
def echo(req: Request, ctx: OpContext) -> Reply:
    """{} with tensors -> {} with the same tensors, bit for bit (the frames are sent back zero-copy)."""
    return Reply(tensors={name: (array, req.dtypes[name]) for name, array in req.tensors.items()})


@op("cancel", control=True)
def cancel(req: Request, ctx: OpContext) -> Reply:
    """``CancelRequest`` -> ``CancelReply``: sets the cancel flag of this client's open request `target`, or with
    ``part`` only that part's (one job of a ``train_many``)."""
    body = parse(CancelRequest, req.body)
    return Reply(body=to_body(CancelReply(found=ctx.state.requests.cancel(ctx.peer, body.target, body.part))))


@op("shutdown", control=True)
def shutdown(req: Request, ctx: OpContext) -> Reply:
    """{} -> {}; the worker then stops serving and exits 0."""
    ctx.state.shutdown.set()
    return Reply()
