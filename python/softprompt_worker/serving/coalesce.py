"""Cross-request batching: concurrent requests of one op that differ only in their rows run as one.

An op opts in by declaring how its rows merge, where it is registered:

    @op("embed", coalesce=Coalesce(rows="texts", tensors=("embeddings",), count="count"))

When the inference lane takes its turn (scheduler.py), the requests queued at that moment are grouped:
same op, same body apart from the rows field, no tensors, same client when the body names a prompt
(prompt names are per client). Each group of two or more runs as one request whose rows are the members'
rows in order (at most ``max_rows``), and the reply is cut back into one reply per member: the tensors
named in ``tensors`` by rows, the body's ``count`` field set to the member's row count, every other body
field shared. So each caller gets the answer it would get alone (up to the float noise of a larger
padded batch: tested), and 1,000 small calls cost a few forward passes instead of 1,000.

A merged run that fails is retried member by member, so each caller gets its own answer or its own error.
Members cancelled before the run are answered ``cancelled``; progress events of a merged run are not
sent (the members are small by construction: a big request fills a batch alone).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MAX_BATCH_ROWS = 256  # default: rows of one merged run at most (`--max-batch-rows`)


@dataclass(frozen=True)
class Coalesce:
    """How an op's requests merge: `rows` is the body's list field, `tensors` the reply tensors whose
    first dimension follows the rows, `count` the reply body field that holds the row count."""

    rows: str
    tensors: tuple[str, ...]
    count: str | None = None


def batch_key(op: str, body: dict[str, Any], rule: Coalesce, client: str) -> str | None:
    """Requests with equal keys may merge; None for one that cannot (its rows are not a list)."""
    rows = body.get(rule.rows)
    if not isinstance(rows, list) or not rows:
        return None
    rest = {k: v for k, v in body.items() if k != rule.rows}
    names_prompt = rest.get("prompt") is not None or rest.get("prompts") is not None
    try:
        shared = json.dumps(rest, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return None
    return f"{op}\0{client if names_prompt else ''}\0{shared}"


def merged_body(bodies: list[dict[str, Any]], rule: Coalesce) -> dict[str, Any]:
    """The first body with every member's rows, in order."""
    rows = [row for body in bodies for row in body[rule.rows]]
    return {**bodies[0], rule.rows: rows}


def split_reply(body: dict[str, Any], tensors: dict[str, Any], sizes: list[int],
                rule: Coalesce) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """One ``(body, tensors)`` per member, in order: row slices of the rule's tensors."""
    parts, start = [], 0
    for size in sizes:
        part_tensors = {name: (value[start:start + size] if name in rule.tensors else value)
                        for name, value in tensors.items()}
        part_body = {**body, rule.count: size} if rule.count else dict(body)
        parts.append((part_body, part_tensors))
        start += size
    return parts


def group(jobs: list, key_of, max_rows: int) -> list[list]:
    """`jobs` in groups that may run as one (first-arrival order; a group's rows at most `max_rows`);
    `key_of(job) -> (key | None, rows)`. Jobs without a key are groups of one."""
    groups: list[list] = []
    open_groups: dict[str, tuple[list, int]] = {}
    for job in jobs:
        key, rows = key_of(job)
        if key is None:
            groups.append([job])
            continue
        current = open_groups.get(key)
        if current is not None and current[1] + rows <= max_rows:
            current[0].append(job)
            open_groups[key] = (current[0], current[1] + rows)
            continue
        members = [job]
        groups.append(members)
        open_groups[key] = (members, rows)
    return groups
