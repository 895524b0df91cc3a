"""The memory planner: a training job's estimated peak memory, from the model's config alone (docs/memory.md).

Entry points: ``plan.plan_job`` (the ``plan`` op's result) and ``check.refuse_if_too_large`` (the ``train``
op's check before it loads a model on CUDA). The other modules are one step each: ``shape`` (sizes from the
config, parameters counted on the meta device), ``weights``, ``workload`` (each method's passes),
``activations``, ``estimate`` (the parts, summed), ``request`` (a job into those inputs), ``suggest``.
"""
