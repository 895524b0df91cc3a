#!/usr/bin/env bash
# GPU benchmark: softprompt's training loop vs PEFT + Trainer, bf16, models built from configs.
# Needs only torch, transformers, peft, numpy (no pyzmq, no network); the fused-training sweep at the end also
# msgpack. Fits in 8 minutes on one H100/H200.
#   bench/gpu/run.sh [--smoke] [--models llama-0.5b] [--steps N] [--out PATH] [--budget-s S]
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${PYTHON:-$(test -x .venv/bin/python && echo .venv/bin/python || echo python3)}"
"$PY" -c 'import torch, transformers, peft; print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__, "cuda", torch.cuda.is_available())'
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
case " $* " in
  *" --smoke "*) exec timeout 480 "$PY" bench/gpu/bench.py "$@" ;;
esac
timeout 330 "$PY" bench/gpu/bench.py "$@"
# Fused training (#13): 8 prompt-tuning jobs on a 0.5B config, one after another vs in shared passes (target 4x).
# It drives the worker's op handlers, so it needs msgpack besides torch; skipped (said) without it.
if "$PY" -c 'import msgpack' 2>/dev/null; then
  timeout 150 "$PY" bench/fused/bench.py --device cuda --model qwen-0.5b --steps 6 --batch 8 --max-length 128 \
    --out bench/results/fused-gpu.json || echo "fused bench failed (exit $?)"
else
  echo "fused bench skipped: no msgpack (carry a wheel: pip download msgpack)"
fi
