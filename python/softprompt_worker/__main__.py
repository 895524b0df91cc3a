"""`softprompt-worker` (or `python -m softprompt_worker`): run a worker (see proto/WIRE.md).

    softprompt-worker --endpoint E --parent-pid P      the worker the SDK starts for one client
                      [--curve-stdin]                  (with CURVE keys read from stdin, on TCP)
    softprompt-worker --check                          print the capabilities as JSON
    softprompt-worker serve --bind tcp://0.0.0.0:5555 --server-key keys/server.key_secret --allow keys/clients
                                                       a shared worker that waits for clients (CURVE on TCP)
    softprompt-worker keys new --out keys --name server
                                                       a CURVE key pair: keys/server.key, keys/server.key_secret
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading

from softprompt_worker.serving.logging_setup import setup_logging
from softprompt_worker.serving.protocol import Limits

log = logging.getLogger("softprompt_worker")


def _common(p: argparse.ArgumentParser) -> None:
    from softprompt_worker.serving.coalesce import MAX_BATCH_ROWS
    from softprompt_worker.serving.scheduler import MAX_TRAINING_JOBS, SCHEDULES

    default = Limits()
    p.add_argument("--max-training-jobs", type=int, default=MAX_TRAINING_JOBS,
                   help="training jobs that share the device at once; later ones queue (default "
                        f"{MAX_TRAINING_JOBS}; 1 under --distributed). Inference is served between their steps.")
    p.add_argument("--max-batch-rows", type=int, default=MAX_BATCH_ROWS,
                   help="concurrent embed, rerank, classify and generate requests that differ only in their rows "
                        "(texts, queries, inputs; classify and generate: also their prompts) run as one request of at "
                        f"most this many rows (default {MAX_BATCH_ROWS}; 1 turns cross-request batching off)")
    p.add_argument("--batch-wait-ms", type=float, default=0.0,
                   help="how long such a request waits for others to join its batch (default 0: it batches only "
                        "with requests already waiting, so an idle worker answers as fast as before)")
    p.add_argument("--schedule", default="turns", choices=SCHEDULES,
                   help="turns (default): jobs and inference take turns on the device (proto/WIRE.md, Scheduling); "
                        "fifo: every compute op runs alone, in arrival order (for comparison and debugging)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--max-message-bytes", type=int, default=default.max_total_bytes,
                   help=f"largest accepted message, tensors included (default {default.max_total_bytes})")
    p.add_argument("--distributed", nargs="?", const="auto", choices=["auto", "nccl", "gloo"], default=None,
                   help="run as one rank of a torchrun worker group (data-parallel training, docs/distributed.md): "
                        "rank 0 serves, the others follow it; backend auto = nccl on GPUs, else gloo")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="softprompt-worker", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--endpoint", default="tcp://127.0.0.1:*",
                   help="ZeroMQ endpoint to bind: ipc://DIR/worker.sock or tcp://127.0.0.1:* (default)")
    p.add_argument("--parent-pid", type=int, default=None, help="exit when this process dies")
    p.add_argument("--curve-stdin", action="store_true",
                   help="read a CURVE key pair for this worker and its one client from stdin (one JSON line, "
                        "written by the SDK), so only that client gets in")
    p.add_argument("--check", action="store_true",
                   help="print the capabilities as JSON on stdout and exit (1 if a dependency is missing)")
    _common(p)
    return p.parse_args(argv)


def parse_serve_args(argv: list[str]) -> argparse.Namespace:
    from softprompt_worker.serving.server import MAX_UNREAD_MESSAGES

    p = argparse.ArgumentParser(prog="softprompt-worker serve",
                                description="Run a worker that several clients share (Softprompt.connect). TCP "
                                            "always runs with CURVE: only the clients whose public keys are in "
                                            "--allow get in.")
    p.add_argument("--bind", required=True, help="tcp://HOST:PORT (PORT * = any free port) or ipc://PATH")
    p.add_argument("--server-key", help="the server's NAME.key_secret (from `softprompt-worker keys new`)")
    p.add_argument("--allow", help="folder of the allowed clients' NAME.key files (SIGHUP re-reads it)")
    p.add_argument("--max-queued", type=int, default=1024,
                   help="compute requests queued at most; past it requests get error `busy` (default 1024)")
    p.add_argument("--max-unread-messages", type=int, default=MAX_UNREAD_MESSAGES,
                   help="replies and events waiting for one client connection at most; a client that leaves "
                        f"more unread is dropped and its requests cancelled (default {MAX_UNREAD_MESSAGES})")
    _common(p)
    return p.parse_args(argv)


def parse_keys_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="softprompt-worker keys", description="CURVE key pairs (keys.py).")
    sub = p.add_subparsers(dest="action", required=True)
    new = sub.add_parser("new", help="make a key pair: OUT/NAME.key (public) and OUT/NAME.key_secret (0600)")
    new.add_argument("--out", required=True, help="folder to write to (made 0700 if missing)")
    new.add_argument("--name", default="client", help="file name stem, e.g. server or alice (default client)")
    new.add_argument("--force", action="store_true", help="replace existing files")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        return serve(parse_serve_args(argv[1:]))
    if argv[:1] == ["keys"]:
        return keys(parse_keys_args(argv[1:]))
    args = parse_args(argv)
    setup_logging(args.log_level)
    if args.check:
        from softprompt_worker.capabilities import capabilities

        caps = capabilities()
        print(json.dumps(caps, indent=2))
        return 1 if caps.get("missing") else 0

    from softprompt_worker.serving.process import set_parent_death_signal
    from softprompt_worker.serving.server import Server

    if args.parent_pid:
        set_parent_death_signal()
    limits = _limits(args)
    if limits is None:
        return 2
    if args.distributed and (code := _join_group(args)) is not None:  # a follower, all its life
        return code
    try:
        curve = _curve_from_stdin() if args.curve_stdin else None
        server = Server(args.endpoint, limits=limits, parent_pid=args.parent_pid, curve=curve,
                        max_training_jobs=_max_training_jobs(args), schedule=args.schedule,
                        **_batching(args))
    except ValueError as exc:  # an endpoint others could reach without CURVE, or bad keys on stdin
        log.error("%s", exc)
        return 2
    _prepare()
    return _serve(server, args)


def serve(args: argparse.Namespace) -> int:
    """`softprompt-worker serve`: 2 on a usage error (no keys for TCP, a bad key file), else the run's code."""
    setup_logging(args.log_level)
    from softprompt_worker.serving.auth import CurveServer
    from softprompt_worker.serving.keys import KeyFileError
    from softprompt_worker.serving.server import Server

    limits = _limits(args)
    if limits is None:
        return 2
    if args.max_queued < 1 or args.max_unread_messages < 1:
        log.error("--max-queued and --max-unread-messages must be positive")
        return 2
    if (args.server_key is None) != (args.allow is None):
        log.error("--server-key and --allow go together")
        return 2
    if args.bind.startswith("tcp://") and args.server_key is None:
        log.error("serving TCP needs CURVE: pass --server-key SERVER.key_secret and --allow CLIENT_KEYS_FOLDER "
                  "(make them with `softprompt-worker keys new`)")
        return 2
    if args.distributed and (code := _join_group(args)) is not None:  # a follower, all its life
        return code
    try:
        curve = CurveServer.from_files(args.server_key, args.allow) if args.server_key else None
        server = Server(args.bind, limits=limits, max_queued=args.max_queued, curve=curve, shared=True,
                        max_unread_messages=args.max_unread_messages, max_training_jobs=_max_training_jobs(args), schedule=args.schedule,
                        **_batching(args))
    except (KeyFileError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    _prepare()
    return _serve(server, args)


def keys(args: argparse.Namespace) -> int:
    from softprompt_worker.serving.keys import KeyFileError, new_key_pair

    try:
        public, secret = new_key_pair(args.out, args.name, overwrite=args.force)
    except (KeyFileError, OSError) as exc:
        print(f"softprompt-worker keys new: {exc}", file=sys.stderr)
        return 2
    print(f"public key: {public}\nsecret key: {secret} (mode 0600; keep it on this machine)")
    return 0


def _curve_from_stdin():
    """The keys the SDK wrote on stdin (only rank 0 of a group gets here, so only it reads them)."""
    from softprompt_worker.serving.auth import CurveServer

    return CurveServer.from_stdin_line(sys.stdin.readline())


def _limits(args: argparse.Namespace) -> Limits | None:
    if args.max_message_bytes < 1:
        log.error("--max-message-bytes must be positive")
        return None
    return Limits(max_frame_bytes=args.max_message_bytes, max_total_bytes=args.max_message_bytes)


def _max_training_jobs(args: argparse.Namespace) -> int:
    """Every rank of a torchrun group must run the same jobs in the same order: one at a time there."""
    if args.max_training_jobs < 1:
        raise ValueError("--max-training-jobs must be at least 1")
    return 1 if args.distributed else args.max_training_jobs


def _batching(args: argparse.Namespace) -> dict[str, float]:
    if args.max_batch_rows < 1 or not 0 <= args.batch_wait_ms <= 1000:
        raise ValueError("--max-batch-rows must be at least 1 and --batch-wait-ms in 0..1000")
    return {"max_batch_rows": args.max_batch_rows, "batch_wait_ms": args.batch_wait_ms}


def _join_group(args: argparse.Namespace) -> int | None:
    """`--distributed`: join the torchrun group. Followers never bind a socket: they stay in
    `distributed.start` and get their exit code; rank 0 gets None and serves (distributed/lifecycle.py)."""
    from softprompt_worker import distributed
    from softprompt_worker.ops import load_op_modules

    return distributed.start(args.distributed, load_ops=load_op_modules, parent_pid=getattr(args, "parent_pid", None))


def _serve(server, args: argparse.Namespace) -> int:
    """Serve until stopped; rank 0 of a worker group then stops its followers too."""
    if not args.distributed:
        return server.run()
    from softprompt_worker import distributed

    return distributed.lead(server)


def _prepare() -> None:
    """Register the ops, and import torch & co. in the background so the first `hello` does not wait."""
    from softprompt_worker.capabilities import capabilities
    from softprompt_worker.ops import load_op_modules

    load_op_modules()
    threading.Thread(target=capabilities, name="capabilities", daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
