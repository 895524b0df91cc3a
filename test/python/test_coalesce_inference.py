"""Cross-request batching of rerank, classify and generate in a real worker, from two clients: concurrent
requests share runs (mixed prompts and prompt-less rows where the op takes a prompt per row), each caller
gets what it gets alone (generate: the same events too), a bad member fails alone, and `status` counts
the merged runs per op."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest

from conftest import Client, WorkerProcess
from softprompt_worker.methods.passage_tuning import PassageTuning, PassageTuningConfig
from softprompt_worker.methods.prefix_tuning import PrefixTuning, PrefixTuningConfig
from softprompt_worker.methods.prompt_tuning import PromptTuning, PromptTuningConfig
from softprompt_worker.models import ModelSpec, load_frozen_model
from softprompt_worker.training.checkpoints import save_checkpoint

# A larger init scale than the default makes the random tiny model emit varied, non-special tokens.
MODEL = {"tiny": "gpt2", "device": "cpu", "overrides": {"initializer_range": 0.2}}
INPUTS = ["hello there", "x", "a medium length input", "q?", "one more row", "zz"]
LABELS = ["yes", "no", "maybe so"]


@pytest.fixture(scope="module")
def clients(worker: WorkerProcess, tmp_path_factory) -> Iterator[tuple[Client, Client]]:
    """alice and bob on one worker; each has its own prompt named "p" (alice: prompt tuning, bob: prefix
    tuning: the same name, two prompts) and "ranker" (passage tuning, alice only)."""
    frozen = load_frozen_model(ModelSpec.from_dict(MODEL))
    folder = tmp_path_factory.mktemp("coalesce")
    paths = {"pt": PromptTuning(PromptTuningConfig(num_virtual_tokens=3, init="random", seed=1), frozen),
             "px": PrefixTuning(PrefixTuningConfig(num_virtual_tokens=5, prefix_projection=True), frozen),
             "pa": PassageTuning(PassageTuningConfig(num_passage_vectors=2, bottleneck_dim=8), frozen)}
    paths = {name: str(save_checkpoint(folder / f"{name}.pb", method, step=1)) for name, method in paths.items()}
    alice, bob = Client(worker.endpoint, timeout_ms=60_000), Client(worker.endpoint, timeout_ms=60_000)
    for i, (c, name) in enumerate(((alice, "alice"), (bob, "bob"))):
        assert c.call(1, "hello", {"protocol": 1, "client": "pytest", "client_id": name})[0]["kind"] == "reply"
    loads = [(alice, "p", "pt"), (bob, "p", "px"), (alice, "ranker", "pa")]
    for i, (c, name, path) in enumerate(loads):
        h, _ = c.call(2 + i, "prompt_load", {"name": name, "path": paths[path], "model": MODEL})
        assert h["kind"] == "reply", h["body"]
    yield alice, bob
    alice.close()
    bob.close()


def _answer(client: Client, id_: int, op: str, body: dict) -> tuple[dict, list[dict]]:
    """One call alone: (its final message, its row events)."""
    client.send(id_, op, body)
    return _collect(client, [id_])[id_]


def _collect(client: Client, ids: list[int]) -> dict[int, tuple[dict, list[dict]]]:
    """The final message and row events of each of `ids` (progress events are dropped)."""
    events: dict[int, list[dict]] = {i: [] for i in ids}
    done: dict[int, tuple[dict, list[dict]]] = {}
    while len(done) < len(ids):
        h, _ = client.recv()
        if h["kind"] == "event":
            if "row" in h["body"]:
                events[h["id"]].append(h["body"])
        elif h["id"] in events:
            done[h["id"]] = (h, events[h["id"]])
    return done


def _concurrently(alice: Client, bob: Client, calls: list[tuple[Client, int, str, dict]]):
    """Send every call while a test op holds the inference lane, so they all queue and the lane takes them
    in one turn; their answers by id (ids are distinct across the two clients)."""
    alice.send(9000, "test_stream", {"n": 200, "interval": 0.05})
    h, _ = alice.recv()
    assert (h["id"], h["kind"]) == (9000, "event")  # it runs: what comes now queues behind it
    for client, id_, op, body in calls:
        client.send(id_, op, body)
    for poll in range(9001, 9200):
        if _status(alice, poll)["queues"]["inference"] == len(calls):
            break
        time.sleep(0.02)
    assert alice.call(9200, "cancel", {"target": 9000})[0]["body"] == {"found": True}
    answers = {}
    for client in (alice, bob):
        ids = [i for c, i, _, _ in calls if c is client] + ([9000] if client is alice else [])
        answers.update(_collect(client, ids))
    return answers


def _status(client: Client, id_: int) -> dict:
    """The `status` reply (a control op: answered at once), skipping the lane holder's events."""
    client.send(id_, "status")
    while True:
        h, _ = client.recv()
        if h["id"] == id_:
            return h["body"]
        assert (h["id"], h["kind"]) == (9000, "event"), h


def _merged(client: Client, id_: int, op: str) -> dict[str, int]:
    """The worker's counts of merged runs of `op` and the requests they answered."""
    return _status(client, id_)["batching"]["ops"].get(op, {"runs": 0, "requests": 0})


def _request(i: int) -> dict:
    """Request i: one or two inputs; the client's prompt "p" for all rows, per row beside a prompt-less
    row, or no prompt."""
    rows = [INPUTS[i % len(INPUTS)], INPUTS[(i + 2) % len(INPUTS)]][: 1 + i % 2]
    selection = [{"prompt": "p"}, {"prompts": ["p", None][: len(rows)]}, {}][i % 3]
    return {"model": MODEL, "inputs": rows, **selection}


def _two_clients(alice: Client, bob: Client, n: int, body) -> dict[int, tuple[Client, dict]]:
    """n requests from each client: id -> (client, body(i))."""
    return {base + i: (c, body(i)) for base, c in ((100, alice), (200, bob)) for i in range(n)}


def test_classify_merges_mixed_prompts_and_each_gets_its_own_scores(clients) -> None:
    alice, bob = clients
    requests = _two_clients(alice, bob, 8, lambda i: {**_request(i), "labels": LABELS})
    alone = {id_: _answer(c, 1000 + id_, "classify", body)[0]["body"] for id_, (c, body) in requests.items()}
    before = _merged(alice, 50, "classify")
    calls = [(c, id_, "classify", body) for id_, (c, body) in requests.items()]
    calls.append((bob, 300, "classify", {"model": MODEL, "inputs": [7], "labels": LABELS}))  # a bad member
    answers = _concurrently(alice, bob, calls)
    for id_ in requests:
        h, _ = answers[id_]
        assert h["kind"] == "reply", h["body"]
        assert h["body"]["predictions"] == alone[id_]["predictions"]
        np.testing.assert_allclose(h["body"]["scores"], alone[id_]["scores"], rtol=1e-5, atol=1e-4)
    assert answers[300][0]["kind"] == "error" and answers[300][0]["body"]["code"] == "invalid_argument"
    after = _merged(alice, 51, "classify")
    assert after["runs"] - before["runs"] >= 2 and after["requests"] - before["requests"] == 16


def _query(i: int, k: int) -> dict:
    words = ["river", "stone", "copper", "violet", "engine", "harbor"]
    passages = [f"the {words[(i + j) % 6]} by the {words[(i * k + j) % 6]}" for j in range(2 + (i + k) % 3)]
    return {"query": f"where is the {words[(i + k) % 6]}?", "passages": passages, **({"top_k": 2} if k else {})}


def test_rerank_merges_per_prompt_and_each_gets_its_own_ranking(clients) -> None:
    alice, bob = clients
    requests = _two_clients(alice, bob, 6, lambda i: {"model": MODEL, **({"prompt": "ranker"} if i % 3 == 0 else {}),
                                                      "queries": [_query(i, k) for k in range(1 + i % 2)]})
    requests = {id_: r for id_, r in requests.items() if not (r[0] is bob and "prompt" in r[1])}  # bob has no ranker
    alone = {id_: _answer(c, 1000 + id_, "rerank", body)[0]["body"] for id_, (c, body) in requests.items()}
    assert {alone[id_]["reranker"] for id_ in requests} == {"upr", "passage_tuning"}
    before = _merged(alice, 52, "rerank")
    calls = [(c, id_, "rerank", body) for id_, (c, body) in requests.items()]
    unknown = {"queries": [_query(0, 0)], "prompt": "ranker"}  # bob loaded none: his own not_found, twice
    calls += [(bob, 300, "rerank", unknown), (bob, 301, "rerank", unknown)]
    answers = _concurrently(alice, bob, calls)
    for id_ in requests:
        h, _ = answers[id_]
        assert h["kind"] == "reply", h["body"]
        assert h["body"]["reranker"] == alone[id_]["reranker"]
        assert len(h["body"]["results"]) == len(requests[id_][1]["queries"])
        for got, want in zip(h["body"]["results"], alone[id_]["results"]):
            assert got["indices"] == want["indices"]
            np.testing.assert_allclose(got["log_likelihood"], want["log_likelihood"], rtol=1e-5, atol=1e-4)
            np.testing.assert_allclose(got["mean_log_likelihood"], want["mean_log_likelihood"], rtol=1e-5, atol=1e-4)
    assert [answers[i][0]["body"]["code"] for i in (300, 301)] == ["not_found", "not_found"]
    after = _merged(alice, 53, "rerank")
    # UPR from both clients in one run, alice's ranker in another; bob's failed run answered nobody
    assert after["runs"] - before["runs"] == 2 and after["requests"] - before["requests"] == len(requests)


@pytest.mark.parametrize("options", [{"max_new_tokens": 6},
                                     {"max_new_tokens": 6, "do_sample": True, "temperature": 0.8, "top_p": 0.9,
                                      "seed": 3}], ids=["greedy", "sampled"])
def test_generate_merges_and_each_gets_its_own_stream(clients, options) -> None:
    alice, bob = clients
    requests = _two_clients(alice, bob, 6, lambda i: {**_request(i), **options, "batch_size": 8})
    alone = {id_: _answer(c, 1000 + id_, "generate", body) for id_, (c, body) in requests.items()}
    assert any(h["body"]["outputs"] != [""] * len(h["body"]["outputs"]) for h, _ in alone.values())
    assert alone[100][0]["body"] != alone[200][0]["body"], "alice's and bob's prompt 'p' are different prompts"
    before = _merged(alice, 54, "generate")
    answers = _concurrently(alice, bob, [(c, id_, "generate", body) for id_, (c, body) in requests.items()])
    for id_ in requests:
        (h, events), (want, want_events) = answers[id_], alone[id_]
        assert h["kind"] == "reply", h["body"]
        assert h["body"]["outputs"] == want["body"]["outputs"]
        assert events == want_events  # each row's deltas, numbered as the caller numbers its rows
    after = _merged(alice, 55, "generate")
    # 18 rows in runs of at most 8 (batch_size: one static batch per run), one client's prompts per run
    assert after["runs"] - before["runs"] >= 2 and after["requests"] - before["requests"] >= 9


def test_a_generate_member_too_long_for_the_model_fails_alone_before_anything_streams(clients) -> None:
    alice, bob = clients
    requests = _two_clients(alice, bob, 2, lambda i: {"model": MODEL, "inputs": [INPUTS[i]], "max_new_tokens": 5})
    alone = {id_: _answer(c, 1000 + id_, "generate", body) for id_, (c, body) in requests.items()}
    before = _merged(alice, 56, "generate")
    too_long = {"model": MODEL, "inputs": ["a" * 260], "max_new_tokens": 5}  # 260 tokens; tiny gpt2 has 256 positions
    calls = [(c, id_, "generate", body) for id_, (c, body) in requests.items()] + [(bob, 300, "generate", too_long)]
    answers = _concurrently(alice, bob, calls)
    for id_ in requests:
        assert (answers[id_][0]["body"], answers[id_][1]) == (alone[id_][0]["body"], alone[id_][1])  # no event twice
    assert answers[300][0]["kind"] == "error" and answers[300][0]["body"]["code"] == "too_large"
    assert _merged(alice, 57, "generate") == before  # the merged run failed before its first token: all ran alone
