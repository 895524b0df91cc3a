"""`softprompt-worker serve` and `keys new`: key files, CURVE on loopback TCP (a listed client gets in, an
unlisted or plain one does not), the endpoint policy, and what a shared worker refuses."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from conftest import PYTHON_SRC, TEST_DIR, Client
from softprompt_worker.__main__ import main
from softprompt_worker.serving.auth import check_endpoint, is_loopback_tcp
from softprompt_worker.serving.keys import KeyFileError, load_allowed_keys, load_public_key, load_secret_key, new_key_pair
from softprompt_worker.serving.server import Server

REFUSED_WAIT_MS = 1500  # how long a refused client waits for an answer that never comes


class CurveClient(Client):
    """`conftest.Client` with CURVE client keys (or none: a plain TCP client)."""

    def __init__(self, endpoint: str, server_public: bytes | None = None, keys: tuple[bytes, bytes] | None = None,
                 timeout_ms: int = 10_000) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.RCVTIMEO, timeout_ms)
        self.sock.setsockopt(zmq.LINGER, 0)
        if keys is not None:
            self.sock.curve_serverkey = server_public
            self.sock.curve_publickey, self.sock.curve_secretkey = keys
        self.sock.connect(endpoint)


def make_keys(root: Path) -> dict[str, Any]:
    new_key_pair(str(root), "server")
    new_key_pair(str(root / "clients"), "alice")
    new_key_pair(str(root / "clients"), "bob")
    new_key_pair(str(root / "other"), "mallory")
    allow = root / "allow"
    allow.mkdir()
    (allow / "alice.key").write_text((root / "clients" / "alice.key").read_text())
    return {"server_secret": root / "server.key_secret", "server": load_public_key(str(root / "server.key")),
            "allow": allow, **{n: load_secret_key(str(root / d / f"{n}.key_secret"))
                               for n, d in (("alice", "clients"), ("bob", "clients"), ("mallory", "other"))}}


def start_serve(*args: str) -> tuple[subprocess.Popen, dict[str, Any]]:
    env = {**os.environ, "SOFTPROMPT_EXTRA_OP_MODULES": "test_server_plugin",
           "PYTHONPATH": os.pathsep.join([str(PYTHON_SRC), str(TEST_DIR)])}
    proc = subprocess.Popen([sys.executable, "-m", "softprompt_worker", "serve", "--log-level", "warning", *args],
                            stdout=subprocess.PIPE, env=env)
    line = proc.stdout.readline().decode()
    assert line.startswith("SOFTPROMPT_READY "), f"unexpected first stdout line: {line!r}"
    return proc, json.loads(line.split(" ", 1)[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    keys = make_keys(tmp_path_factory.mktemp("keys"))
    proc, ready = start_serve("--bind", "tcp://127.0.0.1:*", "--server-key", str(keys["server_secret"]),
                              "--allow", str(keys["allow"]))
    yield {**keys, "endpoint": ready["endpoint"], "proc": proc}
    proc.terminate()
    assert proc.wait(timeout=10) == 0
    proc.stdout.close()


def connect(served: dict[str, Any], who: str | None, **kw: Any) -> CurveClient:
    return CurveClient(served["endpoint"], served["server"], served[who] if who else None, **kw)


def test_keys_new_writes_a_pair_with_a_private_secret(tmp_path: Path) -> None:
    assert main(["keys", "new", "--out", str(tmp_path / "k"), "--name", "alice"]) == 0
    public, secret = tmp_path / "k" / "alice.key", tmp_path / "k" / "alice.key_secret"
    assert (secret.stat().st_mode & 0o777, (tmp_path / "k").stat().st_mode & 0o777) == (0o600, 0o700)
    pub, sec = load_secret_key(str(secret))
    assert load_public_key(str(public)) == pub and len(pub) == len(sec) == 40
    assert zmq.curve_public(sec) == pub  # the pair belongs together
    assert main(["keys", "new", "--out", str(tmp_path / "k"), "--name", "alice"]) == 2  # no silent overwrite
    assert main(["keys", "new", "--out", str(tmp_path / "k"), "--name", "alice", "--force"]) == 0
    assert load_public_key(str(public)) != pub
    secret.chmod(0o644)
    with pytest.raises(KeyFileError, match="readable by other users"):
        load_secret_key(str(secret))
    with pytest.raises(KeyFileError, match="no secret-key"):
        load_secret_key(str(public))
    (tmp_path / "bad.key").write_text('curve\n    public-key = "short"\n')
    with pytest.raises(KeyFileError, match="40 characters of Z85"):
        load_public_key(str(tmp_path / "bad.key"))
    with pytest.raises(KeyFileError, match="is not a folder"):
        load_allowed_keys(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(KeyFileError, match="holds no \\*.key"):
        load_allowed_keys(str(tmp_path / "empty"))


def test_endpoint_policy() -> None:
    assert all(map(is_loopback_tcp, ["tcp://127.0.0.1:5", "tcp://localhost:5", "tcp://[::1]:5", "tcp://127.3.4.5:*"]))
    assert not any(map(is_loopback_tcp, ["tcp://*:5", "tcp://0.0.0.0:5", "tcp://eth0:5", "tcp://10.0.0.1:5"]))
    check_endpoint("tcp://127.0.0.1:*", curve=False)
    check_endpoint("tcp://0.0.0.0:5555", curve=True)


@pytest.mark.parametrize("endpoint", ["ipc://@softprompt-test", "ipc://worker.sock", "inproc://x", "ws://127.0.0.1:5",
                                      "udp://127.0.0.1:5", "pgm://eth0;239.1.1.1:5", "ipc:///tmp/x.sock"])
def test_endpoints_other_users_could_reach_need_curve(endpoint: str) -> None:
    # abstract ipc has no file permissions; other schemes are not checked at all; /tmp is world-enterable
    with pytest.raises(ValueError, match="without CURVE"):
        check_endpoint(endpoint, curve=False)
    check_endpoint(endpoint, curve=True)
    with pytest.raises(ValueError, match="without CURVE"):
        Server(endpoint)
    assert main(["serve", "--bind", endpoint]) == 2


def test_filesystem_ipc_needs_a_private_folder(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    check_endpoint(f"ipc://{private}/worker.sock", curve=False)
    private.chmod(0o755)
    with pytest.raises(ValueError, match="mode 0700"):
        check_endpoint(f"ipc://{private}/worker.sock", curve=False)
    link = tmp_path / "link"
    link.symlink_to(private)
    private.chmod(0o700)
    with pytest.raises(ValueError, match="mode 0700"):  # a link to a private folder: whoever owns the link decides
        check_endpoint(f"ipc://{link}/worker.sock", curve=False)
    with pytest.raises(ValueError, match="cannot be read"):
        check_endpoint(f"ipc://{tmp_path}/missing/worker.sock", curve=False)


def test_serve_refuses_what_needs_curve() -> None:
    with pytest.raises(ValueError, match="without CURVE"):
        Server("tcp://0.0.0.0:*")
    # serve: TCP without keys is a usage error, even on loopback; so is a lone --allow
    assert main(["serve", "--bind", "tcp://127.0.0.1:*"]) == 2
    assert main(["serve", "--bind", "ipc:///tmp/x.sock", "--allow", "/tmp"]) == 2
    # the SDK-started worker cannot be pointed at a public interface either
    assert main(["--endpoint", "tcp://0.0.0.0:*"]) == 2


def test_listed_client_gets_in_and_is_served_after_hello(served: dict[str, Any]) -> None:
    c = connect(served, "alice")
    try:
        h, _ = c.call(1, "test_stream", {"n": 0})  # a compute op before hello: refused, the connection stays
        assert (h["kind"], h["body"]["code"]) == ("error", "invalid_argument") and "hello" in h["body"]["message"]
        h, _ = c.call(2, "hello", {"protocol": 1, "client": "pytest", "client_id": "alice-1"})
        assert h["kind"] == "reply" and h["body"]["pid"] == served["proc"].pid
        assert c.call(3, "ping")[0]["kind"] == "reply"
        assert c.call(4, "test_stream", {"n": 0})[0]["body"] == {"done": 0}
        h, _ = c.call(5, "shutdown")  # clients share this worker: none may stop it
        assert (h["kind"], h["body"]["code"]) == ("error", "invalid_argument") and "SIGTERM" in h["body"]["message"]
        assert c.call(6, "ping")[0]["kind"] == "reply"
    finally:
        c.close()


@pytest.mark.parametrize("who", ["mallory", None], ids=["unlisted-key", "plain-tcp"])
def test_unlisted_and_plain_clients_are_refused(served: dict[str, Any], who: str | None) -> None:
    c = connect(served, who, timeout_ms=REFUSED_WAIT_MS)
    try:
        c.send(1, "ping")
        with pytest.raises(zmq.Again):  # the handshake failed: nothing of ours reached the worker
            c.recv()
    finally:
        c.close()
    ok = connect(served, "alice")  # and the worker still serves the others
    try:
        assert ok.call(1, "ping")[0]["kind"] == "reply"
    finally:
        ok.close()


def test_sighup_rereads_the_allowed_keys(served: dict[str, Any]) -> None:
    bob_key = Path(served["allow"]).parent / "clients" / "bob.key"
    (Path(served["allow"]) / "bob.key").write_text(bob_key.read_text())
    served["proc"].send_signal(signal.SIGHUP)
    for attempt in range(60):  # a refused handshake is not retried: reconnect until the worker has re-read
        c = connect(served, "bob", timeout_ms=500)
        try:
            c.send(1, "ping")
            if c.recv()[0]["kind"] == "reply":
                break
        except zmq.Again:
            continue
        finally:
            c.close()
    else:
        pytest.fail("bob's key was not accepted after SIGHUP")


@pytest.mark.parametrize("line", ["", "{}", '{"server_secret": "short", "client_public": "x"}'])
def test_curve_stdin_refuses_bad_keys(line: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO(line))
    assert main(["--endpoint", "tcp://127.0.0.1:*", "--curve-stdin"]) == 2


def _wait_for(predicate, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_revoking_a_key_closes_its_connection_and_fails_its_requests(tmp_path: Path) -> None:
    from zmq.utils.monitor import recv_monitor_message

    keys = make_keys(tmp_path)
    allow = Path(keys["allow"])
    (allow / "bob.key").write_text((tmp_path / "clients" / "bob.key").read_text())
    proc, ready = start_serve("--bind", "tcp://127.0.0.1:*", "--server-key", str(keys["server_secret"]),
                              "--allow", str(allow))
    served = {**keys, "endpoint": ready["endpoint"]}
    alice, bob = connect(served, "alice", timeout_ms=20_000), connect(served, "bob", timeout_ms=20_000)
    monitor = alice.sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    try:
        for i, c in enumerate((alice, bob)):
            assert c.call(1, "hello", {"protocol": 1, "client": "pytest", "client_id": f"c{i}"})[0]["kind"] == "reply"
        alice.sock.setsockopt(zmq.RCVTIMEO, 3000)
        alice.send(2, "test_stream", {"n": 1000, "interval": 0.05})  # an open request
        assert alice.recv()[0]["kind"] == "event"
        alice.sock.setsockopt(zmq.RCVTIMEO, 1000)
        (allow / "alice.key").unlink()
        proc.send_signal(signal.SIGHUP)
        started = time.monotonic()
        h = {"kind": "event"}
        with contextlib.suppress(zmq.Again):  # the connection may close before the last reply is read
            while h["kind"] == "event":  # events until the revocation ends the request
                h, _ = alice.recv()
        if h["kind"] != "event":
            assert (h["id"], h["kind"], h["body"]["code"]) == (2, "error", "cancelled") and "revoked" in h["body"]["message"]
        assert monitor.poll(3000), "the revoked client's connection was not closed"
        assert recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED
        assert time.monotonic() - started < 3
        alice.sock.setsockopt(zmq.RCVTIMEO, REFUSED_WAIT_MS)
        alice.send(3, "ping")  # its reconnect fails the handshake: nothing is served
        with pytest.raises(zmq.Again):
            alice.recv()
        assert bob.call(2, "ping")[0]["kind"] == "reply"  # the others are untouched
        (allow / "bob.key").unlink()  # the last key: nobody, not "keep the old set"
        proc.send_signal(signal.SIGHUP)
        bob.sock.setsockopt(zmq.RCVTIMEO, 500)

        def bob_refused() -> bool:
            try:
                bob.call(int(time.monotonic() * 1000) % 100000 + 10, "ping")
                return False
            except zmq.Again:
                return True

        assert _wait_for(bob_refused)
    finally:
        monitor.close()
        alice.close()
        bob.close()
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        proc.stdout.close()


def test_a_client_that_never_reads_is_dropped_not_queued_for(tmp_path: Path) -> None:
    import numpy as np
    from zmq.utils.monitor import recv_monitor_message

    keys = make_keys(tmp_path)
    proc, ready = start_serve("--bind", "tcp://127.0.0.1:*", "--server-key", str(keys["server_secret"]),
                              "--allow", str(keys["allow"]), "--max-unread-messages", "4")
    served = {**keys, "endpoint": ready["endpoint"]}
    greedy = CurveClient.__new__(CurveClient)  # as CurveClient, with a 1-message receive queue set before connect
    greedy.ctx = zmq.Context()
    greedy.sock = greedy.ctx.socket(zmq.DEALER)
    greedy.sock.setsockopt(zmq.RCVHWM, 1)
    greedy.sock.setsockopt(zmq.RCVBUF, 65536)
    greedy.sock.setsockopt(zmq.RCVTIMEO, 20_000)
    greedy.sock.setsockopt(zmq.LINGER, 0)
    # No reconnect: a dropped client that connects again is a new connection, served afresh (a drop is not a
    # ban), and its reconnections would each bring back a few replies; this test counts one connection's.
    greedy.sock.setsockopt(zmq.RECONNECT_IVL, -1)
    greedy.sock.curve_serverkey = served["server"]
    greedy.sock.curve_publickey, greedy.sock.curve_secretkey = served["alice"]
    monitor = greedy.sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    greedy.sock.connect(served["endpoint"])
    try:
        assert greedy.call(1, "hello", {"protocol": 1, "client": "pytest", "client_id": "greedy"})[0]["kind"] == "reply"
        blob = np.zeros(1 << 20, dtype=np.uint8).tobytes()  # 1 MiB echoed back per request, never read
        sent = 120
        for i in range(2, 2 + sent):
            greedy.send(i, "echo", {}, [("x", "u8", [len(blob)], blob)])
        time.sleep(3)  # the worker answers; the client reads nothing meanwhile
        greedy.sock.setsockopt(zmq.RCVTIMEO, 2000)
        received = 0
        with pytest.raises(zmq.Again):
            while True:
                greedy.recv()
                received += 1
        # what was in flight (4 queued in the worker, the rest in socket buffers) arrives; the rest was never queued
        assert received < sent // 2, f"the worker queued {received} of {sent} replies for a client that did not read"
        assert monitor.poll(5_000), "the dropped client's connection was not closed"
        assert recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED
        other = connect(served, "alice")
        try:
            assert other.call(1, "ping")[0]["kind"] == "reply"  # the worker is fine and serves others
        finally:
            other.close()
    finally:
        monitor.close()
        greedy.close()
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        proc.stdout.close()
    assert main(["serve", "--bind", "tcp://127.0.0.1:*", "--max-unread-messages", "0"]) == 2


def test_the_sdk_worker_on_tcp_admits_only_the_key_it_read_from_stdin(tmp_path: Path) -> None:
    import shutil

    server_public, server_secret = zmq.curve_keypair()
    client = zmq.curve_keypair()
    env = {**os.environ, "PYTHONPATH": str(PYTHON_SRC)}
    proc = subprocess.Popen([sys.executable, "-m", "softprompt_worker", "--endpoint", "tcp://127.0.0.1:*", "--curve-stdin",
                             "--log-level", "warning"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    proc.stdin.write(json.dumps({"server_secret": server_secret.decode(), "client_public": client[0].decode()}).encode() + b"\n")
    proc.stdin.close()
    try:
        line = proc.stdout.readline().decode()
        assert line.startswith("SOFTPROMPT_READY "), line
        endpoint = json.loads(line.split(" ", 1)[1])["endpoint"]
        owner = CurveClient(endpoint, server_public, client)
        try:
            assert owner.call(1, "ping")[0]["kind"] == "reply"
        finally:
            owner.close()
        stranger = CurveClient(endpoint, timeout_ms=REFUSED_WAIT_MS)  # plain TCP, no key
        try:
            stranger.send(1, "ping")
            with pytest.raises(zmq.Again):
                stranger.recv()
        finally:
            stranger.close()
        if os.geteuid() != 0 or shutil.which("setpriv") is None:
            pytest.skip("running a client as another uid needs root and setpriv")
        probe = ("import sys, zmq, msgpack\n"
                 "s = zmq.Context().socket(zmq.DEALER); s.setsockopt(zmq.RCVTIMEO, 1500); s.setsockopt(zmq.LINGER, 0)\n"
                 "s.connect(sys.argv[1])\n"
                 "s.send(msgpack.packb({'v': 1, 'id': 1, 'kind': 'request', 'op': 'ping', 'body': {}, 'tensors': []}))\n"
                 "try:\n    s.recv(); sys.exit(0)\nexcept zmq.Again:\n    sys.exit(3)\n")
        control = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", sys.executable,
                                  "-c", "import zmq, msgpack"], capture_output=True, timeout=30)
        if control.returncode != 0:
            pytest.skip(f"user nobody cannot run this Python: {control.stderr.decode()[-200:]}")
        result = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", sys.executable,
                                 "-c", probe, endpoint], capture_output=True, timeout=30)
        assert result.returncode == 3, result.stderr.decode()[-500:]  # another local user: no answer
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()
