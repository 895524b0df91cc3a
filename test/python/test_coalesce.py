"""Cross-request batching in a real worker: concurrent `embed` requests that differ only in their texts
run as one forward pass, and each caller gets what it gets alone; a bad member fails alone."""

from __future__ import annotations

import numpy as np

from conftest import Client
from softprompt_worker.serving.coalesce import (BatchKey, Coalesce, batch_key, group, merged_body, route_event,
                                                split_reply)

MODEL = {"tiny": "gpt2", "device": "cpu"}
RULE = Coalesce(rows="texts", tensors=("embeddings",), count="count")


def _vectors(h: dict, frames) -> np.ndarray:
    (desc,) = h["tensors"]
    return np.frombuffer(frames[0].buffer, np.float32).reshape(desc["shape"])


def _call(client: Client, id_: int, body: dict):
    """A unary call that skips `progress` events."""
    client.send(id_, "embed", body)
    while True:
        h, frames = client.recv()
        if h["kind"] != "event":
            return h, frames


def _texts(i: int) -> list[str]:
    return [f"text number {i}" + " more" * (i % 5)] + ([f"and a second one {i}"] if i % 3 == 0 else [])


def test_concurrent_embeds_run_together_and_each_gets_its_own_rows(client: Client) -> None:
    h, _ = _call(client, 1, {"model": MODEL, "texts": ["warm up"]})  # loads the model
    assert h["kind"] == "reply"
    alone = {}
    for i in range(24):
        h, frames = _call(client, 100 + i, {"model": MODEL, "texts": _texts(i)})
        alone[100 + i] = _vectors(h, frames)
    client.send(2, "test_stream", {"n": 1, "interval": 0.3})  # holds the lane while the embeds queue up
    h, _ = client.recv()
    assert (h["id"], h["kind"]) == (2, "event")  # it runs: no embed can share its turn of the lane
    for i in range(24):
        client.send(200 + i, "embed", {"model": MODEL, "texts": _texts(i)})
    client.send(300, "embed", {"model": MODEL, "texts": [123]})  # a bad member: its own error, nobody else's
    replies = {}
    while len(replies) < 26:
        h, frames = client.recv()
        if h["kind"] != "event":
            replies[h["id"]] = (h, frames)
    for i in range(24):
        h, frames = replies[200 + i]
        assert h["kind"] == "reply" and h["body"]["count"] == len(_texts(i))
        np.testing.assert_allclose(_vectors(h, frames), alone[100 + i], rtol=1e-4, atol=1e-5)
    assert replies[300][0]["kind"] == "error" and replies[300][0]["body"]["code"] == "invalid_argument"
    h, _ = client.call(3, "status")
    assert h["body"]["batching"]["runs"] >= 1 and h["body"]["batching"]["requests"] >= 24


def test_what_merges_and_what_does_not() -> None:
    key = lambda body, client="": batch_key("embed", body, RULE, client)  # noqa: E731
    assert key({"model": MODEL, "texts": ["a"]}).key == key({"texts": ["b", "c"], "model": MODEL}).key
    assert key({"model": MODEL, "texts": ["a"]}).key != key({"model": MODEL, "texts": ["a"], "pooling": "last"}).key
    # prompt names are per client: the same name may be two prompts
    alice, bob = key({"prompt": "p", "texts": ["a"]}, "alice"), key({"prompt": "p", "texts": ["a"]}, "bob")
    assert (alice.owner, bob.owner) == ("alice", "bob")
    assert key({"model": MODEL, "texts": ["a"]}, "alice") == key({"model": MODEL, "texts": ["a"]}, "bob")
    assert key({"model": MODEL, "texts": ["a"]}, "alice").owner is None
    assert key({"model": MODEL, "texts": "not a list"}) is None
    jobs = [("k", None, 3), ("k", None, 3), ("j", None, 1), None, ("k", None, 3), ("k", "alice", 1),
            ("k", "bob", 1), ("k", None, 1)]
    keys = [BatchKey(j[0], j[1], j[2], None) if j else None for j in jobs]
    groups = group(list(range(8)), keys.__getitem__, max_rows=7)
    # the third "k" would make 9 rows: a new group; bob's prompts cannot join alice's; the last fits only there
    assert groups == [[0, 1, 5], [2], [3], [4, 6, 7]]


def test_a_merged_reply_is_cut_back_by_rows() -> None:
    body = merged_body([{"model": MODEL, "texts": ["a"]}, {"model": MODEL, "texts": ["b", "c"]}], RULE)
    assert body == {"model": MODEL, "texts": ["a", "b", "c"]}
    vectors = np.arange(6, dtype=np.float32).reshape(3, 2)
    parts = split_reply({"count": 3, "dim": 2}, {"embeddings": vectors}, [1, 2], RULE)
    assert [p[0] for p in parts] == [{"count": 1, "dim": 2}, {"count": 2, "dim": 2}]
    assert np.array_equal(parts[1][1]["embeddings"], vectors[1:])


def test_per_row_prompts_merge_and_spread_over_the_rows() -> None:
    from softprompt_worker.ops.inference import CLASSIFY_BATCHING as rule, GENERATE_BATCHING

    key = lambda body, client="alice": batch_key("classify", body, rule, client)  # noqa: E731
    one = {"model": MODEL, "inputs": ["a"], "prompt": "p", "labels": ["x", "y"]}
    each = {"model": MODEL, "inputs": ["b", "c"], "prompts": ["q", None], "labels": ["x", "y"]}
    none = {"model": MODEL, "inputs": ["d"], "labels": ["x", "y"]}
    assert key(one).key == key(each).key == key(none).key
    assert (key(one).owner, key(each).owner, key(none).owner) == ("alice", "alice", None)
    assert merged_body([one, each, none], rule) == {"model": MODEL, "inputs": ["a", "b", "c", "d"],
                                                    "prompts": ["p", "q", None, None], "labels": ["x", "y"]}
    assert "prompts" not in merged_body([none, none], rule)
    assert key({**one, "prompts": ["p"]}) is None  # both: the op's error, alone
    assert key({**each, "prompts": ["q"]}) is None  # not one per row
    assert key({"inputs": ["d"], "labels": ["x", "y"]}) is None  # no model, no prompt: alone, an error
    assert key({"inputs": ["d"], "prompt": "p", "labels": ["x", "y"]}) is not None  # the prompt's model
    generate = batch_key("generate", {"model": MODEL, "inputs": ["a"]}, GENERATE_BATCHING, "")
    assert generate.max_rows == 16  # GenerateRequest's default batch_size: one static batch per run
    smaller = batch_key("generate", {"model": MODEL, "inputs": ["a"], "batch_size": 4}, GENERATE_BATCHING, "")
    assert smaller.max_rows == 4


def test_replies_are_cut_by_body_rows_and_events_routed_by_row() -> None:
    rule = Coalesce(rows="inputs", body_rows=("outputs",), event_row="row")
    parts = split_reply({"outputs": ["A", "B", "C"], "model": "m"}, {}, [2, 1], rule)
    assert [p[0] for p in parts] == [{"outputs": ["A", "B"], "model": "m"}, {"outputs": ["C"], "model": "m"}]
    assert route_event({"row": 2, "text": "x"}, [2, 1], rule) == (1, {"row": 0, "text": "x"})
    assert route_event({"row": 1, "text": "x"}, [2, 1], rule) == (0, {"row": 1, "text": "x"})
    assert route_event({"event": "progress", "done": 1}, [2, 1], rule) is None
    assert route_event({"row": 3}, [2, 1], rule) is None
