"""What one training micro-batch of a job runs through the frozen model: its forward passes.

``passes(job)`` asks the job's method: each describes its own passes where it is defined
(``SoftPromptMethod.training_passes``: where its extra positions go, how many rows a batch becomes) in
terms of ``methods/workload.py``'s ``Pass``; ``activations.py`` and ``estimate.py`` turn them into bytes.
"""

from __future__ import annotations

from softprompt_worker.methods.workload import Job, Pass

__all__ = ["Job", "Pass", "passes"]


def passes(job: Job) -> list[Pass]:
    """The forward passes of one training micro-batch of ``job``, as its method describes them."""
    from softprompt_worker.methods.registry import method_class

    return method_class(job.method).training_passes(job)
