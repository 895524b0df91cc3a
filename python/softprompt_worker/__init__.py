"""softprompt worker: trains and serves soft prompts for the softprompt TypeScript SDK.

The worker is a long-lived process started and supervised by the SDK. It speaks the protocol in
`proto/WIRE.md` over a ZeroMQ ROUTER socket.
"""

__version__ = "0.1.0"
PROTOCOL_VERSION = 1
