"""Training tasks: what a method is trained to do (generation, classification, embedding, reranking).

See ``base.Task`` for the contract and ``registry`` for the name → module map.
"""
