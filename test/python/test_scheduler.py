"""The scheduler in a real worker subprocess: inference between training steps, jobs sharing the device,
the training-job queue, cancellation and failure of one job, a job's random stream, and `status`.

`test_train` (test_server_plugin.py) is a model-free training job: each step yields its turn, draws from
torch's global generator, holds the device for `step_s` and emits a `step` event."""

from __future__ import annotations

import itertools

from conftest import Client, WorkerProcess

from softprompt_worker.fields import build, to_body
from softprompt_worker.ops.train_events import QueuedEvent


def _until(client: Client, done) -> list[dict]:
    """Receive headers until `done(headers so far)`; returns them in arrival order."""
    seen: list[dict] = []
    while not done(seen):
        seen.append(client.recv()[0])
    return seen


def _replied(*ids: int):
    return lambda seen: all(any(h["id"] == i and h["kind"] != "event" for h in seen) for i in ids)


def _steps_of(seen: list[dict], id_: int) -> list[int]:
    return [h["body"]["step"] for h in seen if h["id"] == id_ and h["kind"] == "event" and h["body"]["event"] == "step"]


def test_inference_is_served_between_training_steps(client: Client) -> None:
    client.send(1, "test_train", {"steps": 60, "step_s": 0.02})
    _until(client, lambda seen: _steps_of(seen, 1)[-1:] == [2] if seen else False)
    client.send(2, "test_stream", {"n": 0})
    seen = _until(client, _replied(2))
    assert _steps_of(seen, 1)[-1:] <= [4], "the inference call waited for more than a step or two"
    rest = _until(client, _replied(1))
    assert rest[-1]["kind"] == "reply" and len(rest[-1]["body"]["draws"]) == 60


def test_inference_cannot_starve_training(client: Client) -> None:
    client.send(10, "test_train", {"steps": 10, "step_s": 0.005})
    next_id, outstanding, steps = 100, 0, []
    while True:  # keep 8 inference calls waiting at all times: the job still gets a turn after each burst
        while outstanding < 8:
            client.send(next_id, "test_stream", {"n": 0})
            next_id, outstanding = next_id + 1, outstanding + 1
        h, _ = client.recv()
        if h["id"] == 10 and h["kind"] == "reply":
            break
        if h["id"] == 10:
            steps.append(h["body"].get("step"))
        else:
            outstanding -= 1
        assert next_id < 5000, "the training job starved behind a stream of inference"
    assert [s for s in steps if s is not None] == list(range(1, 11))
    _until(client, lambda seen: sum(1 for h in seen if h["kind"] == "reply") == outstanding)


def test_two_jobs_share_the_device_in_turns(client: Client) -> None:
    client.send(20, "test_train", {"steps": 12, "step_s": 0.01})
    client.send(21, "test_train", {"steps": 12, "step_s": 0.01})
    seen = _until(client, _replied(20, 21))
    order = [h["id"] for h in seen if h["kind"] == "event" and h["body"]["event"] == "step"]
    # Round-robin once both run (under load the second job's thread may start a few steps late): neither
    # job takes more than two steps in a row while the other has steps left.
    both = max(order.index(20), order.index(21))
    shared = order[both:]
    shared = shared[:len(shared) - next(i for i, x in enumerate(reversed(shared)) if x != shared[-1])]
    runs = [len(list(g)) for _, g in itertools.groupby(shared)]
    assert max(runs, default=0) <= 2, f"not round-robin: {order}"


def test_a_third_job_queues_and_starts_when_one_ends(client: Client) -> None:
    client.send(30, "test_train", {"steps": 400, "step_s": 0.01})
    client.send(31, "test_train", {"steps": 400, "step_s": 0.01})
    client.send(32, "test_train", {"steps": 3, "step_s": 0.0})
    seen = _until(client, lambda s: any(h["id"] == 32 and h["body"].get("event") == "queued" for h in s))
    queued = [h for h in seen if h["id"] == 32 and h["body"].get("event") == "queued"]
    assert queued[0]["body"]["position"] == 1
    assert not any(h["id"] == 32 and h["body"].get("event") == "step" for h in seen), "it ran early"
    client.send(33, "cancel", {"target": 30})  # a slot frees: the queued job starts
    rest = _until(client, _replied(30, 32))
    ended_30 = next(i for i, h in enumerate(rest) if h["id"] == 30 and h["kind"] != "event")
    assert not any(h["id"] == 32 and h["body"].get("event") == "step" for h in rest[:ended_30]), "it ran early"
    client.send(34, "cancel", {"target": 31})
    _until(client, _replied(31))


def test_a_job_its_admission_holds_back_waits_first_in_line_until_the_running_one_ends(client: Client) -> None:
    client.send(35, "test_train", {"steps": 15, "step_s": 0.01})
    _until(client, lambda seen: any(h["id"] == 35 and h["body"].get("event") == "step" for h in seen))
    client.send(36, "test_train", {"steps": 2, "step_s": 0.0, "wait_reason": "needs about 9.0 GiB, 2.0 GiB free"})
    client.send(37, "test_train", {"steps": 2, "step_s": 0.0})  # behind it: the order holds
    seen = _until(client, _replied(35, 36, 37))
    queued = [h["body"] for h in seen if h["id"] == 36 and h["body"].get("event") == "queued"]
    assert queued == [{"event": "queued", "position": 1, "running": 2, "reason": "needs about 9.0 GiB, 2.0 GiB free"}]
    replies = [h["id"] for h in seen if h["kind"] == "reply"]
    first_step = {i: next(k for k, h in enumerate(seen) if h["id"] == i and h["body"].get("event") == "step")
                  for i in (36, 37)}
    ended_35 = next(k for k, h in enumerate(seen) if h["id"] == 35 and h["kind"] == "reply")
    assert replies[0] == 35 and first_step[36] > ended_35 and first_step[37] > ended_35


def test_cancelling_or_failing_one_job_leaves_the_other(client: Client) -> None:
    client.send(40, "test_train", {"steps": 30, "step_s": 0.01})
    client.send(41, "test_train", {"steps": 30, "step_s": 0.01, "fail_at": 5})
    client.send(42, "test_train", {"steps": 3, "step_s": 0.0})  # queued behind them
    client.send(43, "cancel", {"target": 42})
    seen = _until(client, _replied(40, 41, 42, 43))
    by_id = {h["id"]: h for h in seen if h["kind"] != "event"}
    assert by_id[41]["kind"] == "error" and "failed at step 5" in by_id[41]["body"]["message"]
    assert by_id[42]["kind"] == "error" and by_id[42]["body"]["code"] == "cancelled"
    assert by_id[40]["kind"] == "reply" and _steps_of(seen, 40) == list(range(1, 31))
    client.send(44, "test_train", {"steps": 40, "step_s": 0.01})
    client.send(45, "test_train", {"steps": 4, "step_s": 0.01})
    _until(client, lambda seen: len(_steps_of(seen, 44)) >= 2)
    client.send(46, "cancel", {"target": 44})
    seen = _until(client, _replied(44, 45))
    by_id = {h["id"]: h for h in seen if h["kind"] not in ("event",) and h["op"] != "cancel"}
    assert by_id[44]["body"]["code"] == "cancelled"
    assert by_id[45]["kind"] == "reply" and len(by_id[45]["body"]["draws"]) == 4


def test_what_runs_meanwhile_leaves_a_jobs_random_stream_alone(client: Client) -> None:
    h, _ = client.call(50, "test_train", {"steps": 8, "step_s": 0.0, "seed": 7})
    while h["kind"] == "event":
        h, _ = client.recv()
    alone = h["body"]["draws"]
    client.send(51, "test_train", {"steps": 8, "step_s": 0.02, "seed": 7})
    client.send(52, "test_train", {"steps": 8, "step_s": 0.02, "seed": 99})  # reseeds the global generator
    for i in range(20):
        client.send(60 + i, "test_draw")
    seen = _until(client, _replied(51, 52, *range(60, 80)))
    together = next(h for h in seen if h["id"] == 51 and h["kind"] == "reply")["body"]["draws"]
    assert together == alone


def test_status_lists_running_and_queued_jobs(client: Client) -> None:
    client.send(70, "test_train", {"steps": 100, "step_s": 0.01, "job_id": "a"})
    client.send(71, "test_train", {"steps": 100, "step_s": 0.01, "job_id": "b"})
    client.send(72, "test_train", {"steps": 1, "job_id": "c"})
    _until(client, lambda seen: len(_steps_of(seen, 70)) >= 3)
    client.send(73, "status")
    seen = _until(client, _replied(73))
    status = next(h for h in seen if h["id"] == 73)["body"]
    jobs = {j["job_id"]: j for j in status["jobs"]}
    assert {j["state"] for j in (jobs["a"], jobs["b"])} == {"running"} and jobs["c"]["state"] == "queued"
    assert jobs["a"]["total_steps"] == 100 and jobs["a"]["step"] >= 3
    assert status["queues"]["training"] == 1 and status["max_training_jobs"] == 2
    assert status["models"] == [] and status["compute"]["op"] in ("test_train", None)
    for target in (70, 71, 72):
        client.send(80 + target, "cancel", {"target": target})
    _until(client, _replied(70, 71, 72))


def test_schedule_fifo_runs_every_op_alone_in_arrival_order(tmp_path) -> None:
    tmp_path.chmod(0o700)
    fifo = WorkerProcess(f"ipc://{tmp_path}/fifo.sock", "--schedule", "fifo")
    client = Client(fifo.endpoint)
    try:
        client.send(1, "test_train", {"steps": 5, "step_s": 0.01})
        client.send(2, "test_train", {"steps": 5, "step_s": 0.01})
        client.send(3, "test_stream", {"n": 0})
        seen = _until(client, _replied(1, 2, 3))
        finals = [h["id"] for h in seen if h["kind"] != "event"]
        assert finals == [1, 2, 3]  # the second job and the inference call waited for the first job
        assert not any(h["body"].get("event") == "queued" for h in seen)
    finally:
        client.close()
        fifo.stop()


def test_max_training_jobs_from_the_command_line(tmp_path) -> None:
    tmp_path.chmod(0o700)
    one = WorkerProcess(f"ipc://{tmp_path}/one.sock", "--max-training-jobs", "1")
    client = Client(one.endpoint)
    try:
        client.send(1, "test_train", {"steps": 5, "step_s": 0.01})
        client.send(2, "test_train", {"steps": 2, "step_s": 0.0})
        seen = _until(client, _replied(1, 2))
        queued = [h["body"] for h in seen if h["id"] == 2 and h["body"].get("event") == "queued"]
        assert queued == [{"event": "queued", "position": 1, "running": 1}]
        assert [h["id"] for h in seen if h["kind"] == "reply"] == [1, 2]
    finally:
        client.close()
        one.stop()
