"""Data-parallel training on torch.distributed: the worker group that torchrun starts (docs/distributed.md).

    python -m torch.distributed.run --standalone --nproc-per-node 2 \\
        -m softprompt_worker --distributed auto --endpoint ipc:///tmp/sp/worker.sock

Every process of the group runs this package with ``--distributed``. Rank 0 is the worker the SDK speaks
to: it binds the ROUTER, prints READY and serves as usual (``lead``). The other ranks, the followers,
never touch ZeroMQ: ``start`` keeps them in a loop that waits for rank 0 to hand over a job.

- Collective ops (``@collective``; today ``train``) run on every rank. Rank 0 broadcasts ``[op, body]``
  as MessagePack bytes in a uint8 tensor (no pickle anywhere), then each rank runs the same handler.
  Rows uploaded with ``data_append`` live in rank 0's memory, so they travel inline in that body; paths
  (model, data files, ``resume_from``) must name the same files on every node. Every other op
  (inference, prompts, uploads) runs on rank 0 alone.
- Two channels: a gloo *control* group carries jobs, agreements and the stop (idle followers wait on it,
  hence its long timeout); the default group (NCCL on GPUs, gloo on the CPU) carries the soft gradients'
  all-reduce (one per optimizer step) and one all-reduce per log step.
- Agreements: when a rank has set its job up (model, data, method: what can fail on one node alone, like a
  missing file) it says so in an all_gather; a job that failed anywhere then ends on every rank, with the
  failing rank's error, and the group serves on. The ranks agree once more when training ends. A rank
  that fails between the two (say, out of memory on one GPU) leaves the others waiting in a collective
  until the process group's timeout, after which they fail too (with NCCL, the watchdog ends the group
  and the SDK restarts it).
- Events, the run directory and checkpoints come from rank 0 only: a follower runs each job with
  ``run_dir`` pointing at a scratch directory of its own, and returns before writing anything there.

Training semantics (``DataParallel``): ``training.batch_size`` is per rank, so one optimizer step sees
``batch_size x grad_accumulation x world_size`` rows. Rank r takes batches r, r+W, r+2W, ... of the
single-process batch stream (each rank collates the whole global batch and keeps its share, so shuffles
and sampled negatives stay those of one process). A run on W ranks therefore follows the single-process
run with ``grad_accumulation x W``: same rows, same order, same per-micro-batch loss, the same resumable
cursor (test/python/test_distributed.py measures how closely). Only the soft parameters are
synchronised: broadcast from rank 0 at the start, their gradients averaged with one all-reduce per optimizer
step after the step's last backward (not DDP's per-bucket reducer, which misses gradients that arrive in
nested backward passes, as GradCache's do). Every rank
uses the same seed (as a resumed run restores rank 0's RNG state on all ranks). The loss of a ``step``
event is the mean over all ranks; it is all-reduced at log steps only, together with rank 0's cancel
flag, so under data parallelism a cancel takes effect at the next log step (``log_every``). Every rank
runs the evaluation (not sharded yet; rank 0 reports it).

Modules: ``group`` (a rank's place in the group: the control channel, agreements, one job's run),
``lifecycle`` (joining, leading, following), ``collective_ops`` (``@collective``), ``ddp`` (data-parallel
training: ``data_parallel``, ``DataParallel``, ``ShardedStream``), ``sharded`` (a frozen model sharded over
the ranks with FSDP2, ``training.shard_model``).
"""

from softprompt_worker.distributed.collective_ops import collective
from softprompt_worker.distributed.ddp import DataParallel, ShardedStream, data_parallel
from softprompt_worker.distributed.lifecycle import lead, start
from softprompt_worker.distributed.sharded import sharded_model

__all__ = ["DataParallel", "ShardedStream", "collective", "data_parallel", "lead", "sharded_model", "start"]
