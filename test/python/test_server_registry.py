"""serving/handlers.py (the op table) and op discovery."""

from __future__ import annotations

import threading

import pytest

from softprompt_worker.ops import load_op_modules
from softprompt_worker.serving import handlers
from softprompt_worker.serving.handlers import OpContext, Reply, Request, WorkerState, get_op, op


def test_register_and_lookup() -> None:
    @op("test_registry_double")
    def double(req: Request, ctx: OpContext) -> Reply:
        ctx.emit({"half": True})
        return Reply(body={"x": req.body["x"] * 2})

    spec = get_op("test_registry_double")
    assert spec is not None and not spec.control
    sent = []
    ctx = OpContext(5, "test_registry_double", WorkerState(), lambda *a: sent.append(a))
    reply = spec.handler(Request(5, "test_registry_double", {"x": 4}, {}), ctx)
    assert reply.body == {"x": 8}
    assert sent == [(5, "test_registry_double", {"half": True}, {})]
    assert "test_registry_double" in handlers.registered_ops()
    with pytest.raises(ValueError, match="already registered"):
        op("test_registry_double")(double)


def test_cancel_flag() -> None:
    ctx = OpContext(1, "x", WorkerState(), lambda *a: None)
    assert not ctx.cancelled
    ctx.cancel_event.set()
    assert ctx.cancelled


def test_state_get_or_create_once() -> None:
    state = WorkerState()
    calls = []

    def make() -> list[int]:
        calls.append(1)
        return [1]

    threads = [threading.Thread(target=state.get_or_create, args=("k", make)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1]
    assert state.get_or_create("k", make) is state.cache["k"]


def test_failed_op_module_is_reported_not_raised() -> None:
    failed = load_op_modules(["softprompt_worker.no_such_module_xyz"])
    assert list(failed) == ["softprompt_worker.no_such_module_xyz"]
    assert "ModuleNotFoundError" in failed["softprompt_worker.no_such_module_xyz"]
