"""The raw baseline of bench/ipc: a pyzmq ROUTER that echoes every message's frames unchanged.

No MessagePack, no validation, no dispatch: the cost floor of one round trip over the same socket
types and transport the SDK uses. Zero-copy both ways, like the worker.

    python raw_echo_server.py ENDPOINT     # prints `READY <bound endpoint>` on stdout
"""

import sys

import zmq

ctx = zmq.Context()
sock = ctx.socket(zmq.ROUTER)
sock.bind(sys.argv[1])
print("READY " + sock.getsockopt_string(zmq.LAST_ENDPOINT), flush=True)
while True:
    frames = sock.recv_multipart(copy=False)
    if len(frames) == 2 and frames[1].bytes == b"stop":
        break
    sock.send_multipart(frames, copy=False)
sock.close(linger=0)
ctx.term()
