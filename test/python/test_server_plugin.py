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


def _admission(body, state):
    return body.get("wait_reason")  # as planner/admission.py answers when memory is short


@op("test_train", training=True, admission=_admission)
def fake_train(req: Request, ctx: OpContext) -> Reply:
    """{"steps": int, "step_s": float, "seed": int, "fail_at"?: int, "wait_reason"?: str} -> {"draws": [float]}:
    a training job without a model. Each step yields its turn, draws from torch's global generator, works
    `step_s` (a busy loop: it holds the device), and emits {"event": "step", "step"}. With `wait_reason` its
    admission says it must wait while another job runs."""
    import torch

    steps, step_s = req.body.get("steps", 5), req.body.get("step_s", 0.01)
    torch.manual_seed(req.body.get("seed", 0))
    draws = []
    ctx.emit({"event": "started", "start_step": 0, "total_steps": steps})
    for step in range(1, steps + 1):
        ctx.yield_turn()
        if ctx.cancelled:
            raise CancelledError(f"test_train cancelled at step {step}")
        if step == req.body.get("fail_at"):
            raise ValueError(f"test_train failed at step {step}")
        draws.append(float(torch.rand(())))
        end = time.perf_counter() + step_s
        while time.perf_counter() < end:
            pass
        ctx.emit({"event": "step", "step": step, "loss": 1.0 / step})
    return Reply(body={"draws": draws})


@op("test_draw")
def draw(req: Request, ctx: OpContext) -> Reply:
    """{} -> {"x": float}: an inference op that draws from torch's global generator."""
    import torch

    return Reply(body={"x": float(torch.rand(()))})
