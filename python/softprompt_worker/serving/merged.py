"""One run for requests that coalesce (``coalesce.py``): the context their op sees, and each member's answer.

Members already cancelled, and members whose body does not parse as the op's request (``Coalesce.request``),
run alone first (and get their ``cancelled`` or their bad field). The op then runs once on the others'
merged body with a `MergedContext`: it resolves prompts as the client whose prompts the group names, it
is cancelled only when every member is, and the events it emits go to the members that own their rows
(``Coalesce.event_row``). Then each member is answered:

- the run succeeded: its rows of the reply (``split_reply``);
- the member was cancelled meanwhile: error ``cancelled`` (its events stopped when it was);
- the run failed: the member runs alone and gets its own answer or its own error, unless the run had
  already streamed events to it (running it again would repeat them): then it gets the run's error. A
  merged ``generate`` is one static batch (``Coalesce.batch_rows``) whose rows are checked before its
  first token, so what fails after that is not one member's input but the run itself (out of memory).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

from softprompt_worker.errors import CancelledError, InvalidArgumentError
from softprompt_worker.fields import parse
from softprompt_worker.serving.coalesce import Coalesce, merged_body, names_prompt, route_event, split_reply
from softprompt_worker.serving.handlers import OpContext, Reply, Request, WorkerState

if TYPE_CHECKING:
    from softprompt_worker.serving.scheduler import Job

log = logging.getLogger("softprompt_worker")


class MergedContext(OpContext):
    """The context of a merged run: cancelled when every member is, events routed to their rows' members."""

    def __init__(self, members: list[OpContext], sizes: list[int], rule: Coalesce, state: WorkerState) -> None:
        first = members[0]
        super().__init__(first.request_id, first.op, state, lambda *_: None, peer=first.peer)
        self.members, self.sizes, self.rule = members, sizes, rule
        self.streamed = [False] * len(members)  # whether the run has sent the member an event

    def emit(self, body: dict[str, Any], tensors: dict[str, Any] | None = None) -> None:
        self.state.compute.beat()
        routed = route_event(body, self.sizes, self.rule)
        if routed is None:
            return
        member, member_body = routed
        if not self.members[member].cancel_event.is_set():
            self.streamed[member] = True
            self.members[member].emit(member_body, tensors)

    @property
    def cancelled(self) -> bool:
        self.state.compute.beat()
        return all(member.cancel_event.is_set() for member in self.members)


def _parses(body: dict[str, Any], rule: Coalesce) -> bool:
    """Whether the body parses as the rule's request dataclass (where it names one)."""
    if rule.request is None:
        return True
    try:
        parse(rule.request, body)
    except InvalidArgumentError:
        return False
    return True


def run_merged(jobs: list[Job], run_alone: Callable[[Job], None], answer: Callable[[Job, Reply | Exception], None],
               counted: Callable[[int], None]) -> None:
    """Run `jobs` (one group of ``coalesce.group``) as one request and answer each member with `answer`;
    `run_alone(job)` runs a member by itself and answers it. `counted(n)` hears, before anyone is answered,
    how many members the merged run answers (0: it did not run, or it failed before streaming anything),
    so a caller who has its answer sees the run in ``status``. Never raises."""
    rule = jobs[0].spec.coalesce
    live = [job for job in jobs if not job.ctx.cancel_event.is_set() and _parses(job.request.body, rule)]
    for job in jobs:
        if job not in live:
            run_alone(job)  # answers `cancelled`, or its bad field
    if len(live) < 2:
        for job in live:
            run_alone(job)
        return
    spec = live[0].spec
    bodies = [job.request.body for job in live]
    sizes = [len(body[rule.rows]) for body in bodies]
    lead = next((job for job in live if names_prompt(job.request.body)), live[0])  # whose prompts the run sees
    ctx = MergedContext([job.ctx for job in live], sizes, rule, lead.ctx.state)
    request = Request(id=lead.request.id, op=lead.request.op, body=merged_body(bodies, rule))
    monitor = lead.ctx.state.compute
    monitor.started(request.op, request.id)
    failure: Exception | None = None
    try:
        reply = spec.handler(request, ctx)
        parts: list[Reply | Exception] = [Reply(body=b, tensors=t)
                                          for b, t in split_reply(reply.body, reply.tensors, sizes, rule)]
    except Exception as exc:  # noqa: BLE001 - each member alone: its own answer or its own error
        log.debug("merged %s of %d requests failed (%s): running them one by one", request.op, len(live), exc)
        failure, parts = exc, [exc] * len(live)
    finally:
        monitor.finished()
    cancelled = [job.ctx.cancel_event.is_set() for job in live]
    counted(sum(1 for c, streamed in zip(cancelled, ctx.streamed) if not c and (failure is None or streamed)))
    for job, part, streamed, c in zip(live, parts, ctx.streamed, cancelled):
        if c:
            answer(job, CancelledError(f"request {job.request.id} ({job.request.op}) was cancelled"))
        elif failure is not None and not streamed:
            run_alone(job)
        else:
            answer(job, part)
