"""Cross-request batching: concurrent requests of one op that differ only in their rows run as one.

An op opts in by declaring how its rows merge, where it is registered:

    @op("embed", coalesce=Coalesce(rows="texts", tensors=("embeddings",), count="count"))
    @op("classify", coalesce=Coalesce(rows="inputs", body_rows=("predictions", "scores"),
                                      per_row=("prompt", "prompts")))

When the inference lane takes its turn (scheduler.py), the requests queued at that moment are grouped
(`batch_key`, `group`): same op, same body apart from the rows (and the ``per_row`` pair), no tensors.
Prompt names are per client, so requests that name a prompt merge only with the same client's requests
and with requests that name none. Each group of two or more runs as one request whose rows are the
members' rows in order (at most ``max_rows``, and at most the body's ``batch_rows`` field where the rule
names one), and the reply is cut back into one reply per member (`split_reply`): the tensors named in
``tensors`` and the body lists named in ``body_rows`` by rows, the body's ``count`` field set to the
member's row count, every other body field shared. So each caller gets the answer it would get alone (up
to the float noise of a larger padded batch: tested), and 1,000 small calls cost a few forward passes
instead of 1,000.

``per_row`` names a field that applies to every row and its one-per-row twin (``("prompt", "prompts")``):
requests that differ in it still merge, each member's value repeated over its rows in the twin. So one
run mixes prompts and prompt-less rows, as ``methods/injection.py`` lets a batch do. A request that names
no prompt and no ``model`` runs alone: merged, its rows would take the other members' model.

Events of a merged run reach a member only where the rule names ``event_row``, the event field that
holds a row index (``generate``'s ``"row"``): each such event goes to the member that owns the row,
renumbered as that member numbers its rows (`route_event`). Other events (progress) are not sent.
Running the merged run and answering each member is ``merged.py``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

MAX_BATCH_ROWS = 256  # default: rows of one merged run at most (`--max-batch-rows`)

J = TypeVar("J")


@dataclass(frozen=True)
class Coalesce:
    """How an op's requests merge (see the module docstring).

    rows: the request body's list field whose items are the rows.
    tensors: the reply tensors whose first dimension follows the rows.
    body_rows: the reply body lists with one item per row.
    count: the reply body field that holds the row count.
    per_row: ``(field for every row, its one-per-row twin)``: requests that differ in it still merge.
    event_row: the event body field that holds a row index: such events go to the row's member.
    batch_rows: the request body field that bounds a merged run's rows (``generate``'s ``batch_size``: one
        static batch, since every member's reply waits for the whole run); its default is ``request``'s.
    request: the request body's dataclass (``fields.parse``): each member's body is parsed before the run,
        so a member with a bad field gets its own error and the others still share the run.
    """

    rows: str
    tensors: tuple[str, ...] = ()
    body_rows: tuple[str, ...] = ()
    count: str | None = None
    per_row: tuple[str, str] | None = None
    event_row: str | None = None
    batch_rows: str | None = None
    request: type | None = None

    def __post_init__(self) -> None:
        if self.batch_rows is not None and self.request is None:
            raise ValueError("Coalesce: batch_rows takes its default from request; give the request's dataclass")


@dataclass(frozen=True)
class BatchKey:
    """How one request may join a merged run."""

    key: str  # requests with equal keys may merge
    owner: str | None  # the client whose prompts it names; None: it names none (merges with any client's)
    rows: int  # its rows
    max_rows: int | None  # the rule's own bound on a merged run's rows (`Coalesce.batch_rows`), else None


def batch_key(op: str, body: dict[str, Any], rule: Coalesce, client: str) -> BatchKey | None:
    """The request's `BatchKey`; None for one that runs alone (its rows are not a non-empty list, its
    per-row field does not follow its rows, or it could only fail alone but might not merged)."""
    rows = body.get(rule.rows)
    if not isinstance(rows, list) or not rows:
        return None
    rest = {k: v for k, v in body.items() if k != rule.rows}
    if rule.per_row is not None:
        one, each = rule.per_row
        if one in body and each in body:
            return None  # the op refuses both: let it say so to this member alone
        if body.get(each) is not None and (not isinstance(body[each], list) or len(body[each]) != len(rows)):
            return None
        rest = {k: v for k, v in rest.items() if k not in rule.per_row}
        if not names_prompt(body) and body.get("model") is None:
            return None  # alone: "model: required"; merged, its rows would take the others' prompts' model
    limit = rest.get(rule.batch_rows, _default(rule.request, rule.batch_rows)) if rule.batch_rows else None
    try:
        shared = json.dumps(rest, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return None
    return BatchKey(key=f"{op}\0{shared}", owner=client if names_prompt(body) else None, rows=len(rows),
                    max_rows=limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else None)


def _default(cls: type, name: str) -> Any:
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


def names_prompt(body: dict[str, Any]) -> bool:
    """Whether the body names a prompt (``prompt``, or a name in ``prompts``): prompt names are per client."""
    prompts = body.get("prompts")
    return body.get("prompt") is not None or (isinstance(prompts, list) and any(p is not None for p in prompts))


def merged_body(bodies: list[dict[str, Any]], rule: Coalesce) -> dict[str, Any]:
    """The first body with every member's rows, in order (and the per-row field spread over them)."""
    merged = {**bodies[0], rule.rows: [row for body in bodies for row in body[rule.rows]]}
    if rule.per_row is not None:
        one, each = rule.per_row
        values = [v for body in bodies
                  for v in (body[each] if body.get(each) is not None else [body.get(one)] * len(body[rule.rows]))]
        merged.pop(one, None)
        merged.pop(each, None)
        if any(v is not None for v in values):
            merged[each] = values
    return merged


def split_reply(body: dict[str, Any], tensors: dict[str, Any], sizes: list[int],
                rule: Coalesce) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """One ``(body, tensors)`` per member, in order: row slices of the rule's tensors and body lists."""
    parts, start = [], 0
    for size in sizes:
        rows = slice(start, start + size)
        part_tensors = {name: (value[rows] if name in rule.tensors else value) for name, value in tensors.items()}
        part_body = {name: (value[rows] if name in rule.body_rows else value) for name, value in body.items()}
        if rule.count:
            part_body[rule.count] = size
        parts.append((part_body, part_tensors))
        start += size
    return parts


def route_event(body: dict[str, Any], sizes: list[int], rule: Coalesce) -> tuple[int, dict[str, Any]] | None:
    """``(member, the event as that member numbers its rows)`` for an event of a merged run; None for an
    event that names no row (it is not sent)."""
    row = body.get(rule.event_row) if rule.event_row is not None else None
    if not isinstance(row, int) or row < 0:
        return None
    start = 0
    for member, size in enumerate(sizes):
        if row < start + size:
            return member, {**body, rule.event_row: row - start}
        start += size
    return None


@dataclass
class _Open:
    members: list
    rows: int
    owner: str | None
    max_rows: int


def group(jobs: list[J], key_of: Callable[[J], BatchKey | None], max_rows: int) -> list[list[J]]:
    """`jobs` in groups that may run as one, in order of each group's first member. A job joins the first
    group with its key that has room for its rows (at most `max_rows`, and the rule's own bound) and no
    other client's prompts; jobs without a key are groups of one."""
    groups: list[list[J]] = []
    open_groups: dict[str, list[_Open]] = {}
    for job in jobs:
        k = key_of(job)
        if k is None:
            groups.append([job])
            continue
        candidates = open_groups.setdefault(k.key, [])
        for g in candidates:
            if g.rows + k.rows <= g.max_rows and (k.owner is None or g.owner is None or g.owner == k.owner):
                g.members.append(job)
                g.rows += k.rows
                g.owner = k.owner if g.owner is None else g.owner
                break
        else:
            g = _Open([job], k.rows, k.owner, min(max_rows, k.max_rows or max_rows))
            candidates.append(g)
            groups.append(g.members)
    return groups
