"""`python -m softprompt_worker`: run the worker (see proto/WIRE.md), or `--check` its environment."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading

from softprompt_worker.logging_setup import setup_logging
from softprompt_worker.protocol import Limits


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    default = Limits()
    p = argparse.ArgumentParser(prog="python -m softprompt_worker", description=__doc__)
    p.add_argument("--endpoint", default="tcp://127.0.0.1:*",
                   help="ZeroMQ endpoint to bind: ipc://DIR/worker.sock or tcp://127.0.0.1:* (default)")
    p.add_argument("--parent-pid", type=int, default=None, help="exit when this process dies")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--max-message-bytes", type=int, default=default.max_total_bytes,
                   help=f"largest accepted message, tensors included (default {default.max_total_bytes})")
    p.add_argument("--check", action="store_true",
                   help="print the capabilities as JSON on stdout and exit (1 if a dependency is missing)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_level)
    if args.check:
        from softprompt_worker.capabilities import capabilities

        caps = capabilities()
        print(json.dumps(caps, indent=2))
        return 1 if caps.get("missing") else 0

    from softprompt_worker.ops import load_op_modules
    from softprompt_worker.server import Server, set_parent_death_signal

    if args.parent_pid:
        set_parent_death_signal()
    if args.max_message_bytes < 1:
        logging.getLogger("softprompt_worker").error("--max-message-bytes must be positive")
        return 2
    limits = Limits(max_frame_bytes=args.max_message_bytes, max_total_bytes=args.max_message_bytes)
    load_op_modules()
    # Import torch & co. now, in the background, so the first `hello` does not wait for it.
    from softprompt_worker.capabilities import capabilities

    threading.Thread(target=capabilities, name="capabilities", daemon=True).start()
    return Server(args.endpoint, limits=limits, parent_pid=args.parent_pid).run()


if __name__ == "__main__":
    sys.exit(main())
