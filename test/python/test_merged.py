"""A merged run and its members (serving/merged.py), with a stand-in op that streams one event per row:
events reach the row's member renumbered, a member cancelled mid-run stops alone, a failed run is
retried member by member unless it had streamed to a member, a member with a bad body runs alone."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from softprompt_worker.errors import CancelledError, InvalidArgumentError
from softprompt_worker.fields import option, parse
from softprompt_worker.serving.coalesce import Coalesce
from softprompt_worker.serving.handlers import OpContext, OpSpec, Reply, Request, WorkerState
from softprompt_worker.serving.merged import MergedContext, run_merged
from softprompt_worker.serving.scheduler import Job


@dataclass(kw_only=True)
class EchoRequest:
    rows: list[str] = option(min_items=1, doc="rows")
    fail_at: int | None = option(None, doc="raise at this row")


RULE = Coalesce(rows="rows", body_rows=("echo",), count="count", event_row="row", request=EchoRequest)


def echo(req: Request, ctx: OpContext) -> Reply:
    """One event per row, then the rows back; raises at row `fail_at`, or when cancelled."""
    body = parse(EchoRequest, req.body)
    for row, text in enumerate(body.rows):
        if ctx.cancelled:
            raise CancelledError("echo cancelled")
        if row == body.fail_at:
            raise RuntimeError("the device fell over")
        ctx.emit({"row": row, "text": text})
        ctx.emit({"event": "progress", "done": row + 1})  # names no row: a merged run sends it to nobody
    return Reply(body={"echo": [t.upper() for t in body.rows], "count": len(body.rows), "shared": True})


@dataclass
class Member:
    """A job and what it was sent."""

    job: Job
    events: list[dict] = field(default_factory=list)
    answers: list = field(default_factory=list)
    cancel_after: int | None = None  # the caller cancels once it has this many events


def members(*bodies: dict, state: WorkerState | None = None) -> list[Member]:
    state = state or WorkerState()
    spec = OpSpec("echo", echo, control=False, coalesce=RULE)
    out = []
    for i, body in enumerate(bodies):
        def emit(_id, _op, event, _tensors, i=i):
            out[i].events.append(event)
            if out[i].cancel_after == len(out[i].events):
                out[i].job.ctx.cancel_event.set()

        ctx = OpContext(i + 1, "echo", state, emit)
        out.append(Member(Job(b"peer", spec, Request(i + 1, "echo", body), ctx)))
    return out


def run(group: list[Member]) -> tuple[int, list[int]]:
    """Run the group merged; (members the merged run answered, ids that ran alone)."""
    alone: list[int] = []
    counted: list[int] = []
    by_job = {id(m.job): m for m in group}

    def answer(job: Job, outcome) -> None:
        if job.request.id not in alone:  # the run's answers come after its count: status agrees with callers
            assert counted
        by_job[id(job)].answers.append(outcome)

    def run_alone(job: Job) -> None:
        alone.append(job.request.id)
        try:
            answer(job, CancelledError("cancelled") if job.ctx.cancelled else echo(job.request, job.ctx))
        except Exception as exc:  # noqa: BLE001
            answer(job, exc)

    run_merged([m.job for m in group], run_alone, answer, counted.append)
    return (counted or [0])[0], alone


def test_rows_events_and_replies_go_to_their_members() -> None:
    group = members({"rows": ["a", "b"]}, {"rows": ["c"]}, {"rows": ["d", "e"]})
    assert run(group) == (3, [])
    assert [m.events for m in group] == [[{"row": 0, "text": "a"}, {"row": 1, "text": "b"}],
                                         [{"row": 0, "text": "c"}],
                                         [{"row": 0, "text": "d"}, {"row": 1, "text": "e"}]]
    assert [m.answers[0].body for m in group] == [{"echo": ["A", "B"], "count": 2, "shared": True},
                                                  {"echo": ["C"], "count": 1, "shared": True},
                                                  {"echo": ["D", "E"], "count": 2, "shared": True}]


def test_a_member_cancelled_mid_run_stops_alone() -> None:
    group = members({"rows": ["a", "b", "c"]}, {"rows": ["d", "e"]})
    group[0].cancel_after = 1  # its caller cancels after its first event
    assert run(group) == (1, [])
    assert group[0].events == [{"row": 0, "text": "a"}]
    assert isinstance(group[0].answers[0], CancelledError)
    assert len(group[1].events) == 2 and group[1].answers[0].body["echo"] == ["D", "E"]


def test_the_run_is_cancelled_when_every_member_is() -> None:
    group = members({"rows": ["a"]}, {"rows": ["b", "c"]})
    group[0].cancel_after = group[1].cancel_after = 1  # both callers cancel after their first event
    assert run(group) == (0, [])  # the run stopped at row "c"; nobody is run again
    assert [m.events for m in group] == [[{"row": 0, "text": "a"}], [{"row": 0, "text": "b"}]]
    assert all(isinstance(m.answers[0], CancelledError) for m in group)
    contexts = [m.job.ctx for m in members({"rows": ["a"]}, {"rows": ["b"]})]
    merged = MergedContext(contexts, [1, 1], RULE, WorkerState())
    contexts[0].cancel_event.set()
    assert not merged.cancelled
    contexts[1].cancel_event.set()
    assert merged.cancelled


def test_a_failed_run_is_retried_alone_unless_it_streamed_to_the_member() -> None:
    # the run fails at merged row 2: member 0 (rows 0-1) has its events, member 1 has none yet
    group = members({"rows": ["a", "b"], "fail_at": 2}, {"rows": ["c"], "fail_at": 2})
    answered, alone = run(group)
    assert (answered, alone) == (1, [2])
    assert isinstance(group[0].answers[0], RuntimeError) and len(group[0].events) == 2  # no event twice
    assert group[1].answers[0].body["echo"] == ["C"]  # alone it has no row 2: it succeeds


def test_a_member_with_a_bad_body_runs_alone_and_the_others_share_the_run() -> None:
    group = members({"rows": ["a"]}, {"rows": [7]}, {"rows": ["b"]})
    assert run(group) == (2, [2])
    assert isinstance(group[1].answers[0], InvalidArgumentError)
    assert [group[0].answers[0].body["echo"], group[2].answers[0].body["echo"]] == [["A"], ["B"]]


def test_an_op_that_names_batch_rows_must_name_its_request() -> None:
    with pytest.raises(ValueError, match="batch_rows"):
        Coalesce(rows="rows", batch_rows="batch_size")
