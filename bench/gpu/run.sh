#!/usr/bin/env bash
# GPU benchmark: softprompt's training loop vs PEFT + Trainer, bf16, models built from configs.
# Needs only torch, transformers, peft, numpy (no pyzmq, no network). Fits in 8 minutes on one H100/H200.
#   bench/gpu/run.sh [--smoke] [--models llama-0.5b] [--steps N] [--out PATH] [--budget-s S]
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${PYTHON:-$(test -x .venv/bin/python && echo .venv/bin/python || echo python3)}"
"$PY" -c 'import torch, transformers, peft; print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__, "cuda", torch.cuda.is_available())'
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
exec timeout 480 "$PY" bench/gpu/bench.py "$@"
