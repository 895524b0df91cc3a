"""Test-only ops, loaded into worker subprocesses via SOFTPROMPT_EXTRA_OP_MODULES=test_server_plugin.

(No tests here; the module sits beside the tests so the worker can import it from test/python.)
"""

from __future__ import annotations

import time

from softprompt_worker.errors import CancelledError
from softprompt_worker.serving.handlers import OpContext, Reply, Request, op


@op("test_stream")
def stream(req: Request, ctx: OpContext) -> Reply:
    """{"n": int, "interval": float} -> n events {"i"}, then {"done": n}; error `cancelled` on cancel."""
    n, interval = req.body.get("n", 3), req.body.get("interval", 0.0)
    for i in range(n):
        if ctx.cancelled:
            raise CancelledError(f"test_stream cancelled at step {i}")
        ctx.emit({"i": i})
        time.sleep(interval)
    return Reply(body={"done": n})


@op("test_fail")
def fail(req: Request, ctx: OpContext) -> Reply:
    raise ValueError("boom")


@op("test_oom")
def oom(req: Request, ctx: OpContext) -> Reply:
    import torch

    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


@op("test_torch_out")
def torch_out(req: Request, ctx: OpContext) -> Reply:
    import torch

    x = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    return Reply(body={"n": 6}, tensors={"bf": x.to(torch.bfloat16), "t": x.T})


@op("test_block")
def block(req: Request, ctx: OpContext) -> Reply:
    """{"s": float} -> {}: sleeps without emitting or checking its cancel flag, as a stuck read would."""
    time.sleep(float(req.body.get("s", 1.0)))
    return Reply()
