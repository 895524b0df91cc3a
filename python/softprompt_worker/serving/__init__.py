"""The socket side of the worker: framing, the socket loop, who may connect, the handler contract.

``handlers`` defines what an op handler is (``Request`` in, ``Reply`` out, an ``OpContext`` beside it,
the ``WorkerState`` all ops share) and the table ``@op`` registers into; ``server`` receives, validates,
dispatches and replies. Nothing here imports torch or an op: ops, ``distributed`` and the models sit
above this package and import it, never the reverse.
"""
