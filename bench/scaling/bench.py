"""Scaling benchmark (not a test): how a prompt-tuning training step's time and memory grow with virtual
tokens, sequence length, batch size and model size. One axis moves at a time from a base point
(tiny gpt2 from a config, 4 layers x 256, 20 virtual tokens, 128 tokens per row, batch 8, f32 CPU).

    .venv/bin/python bench/scaling/bench.py [--quick]

Rows are three data/debian descriptions joined, so every row fills max_length exactly (the sequence
axis is the real length, not a cap). Each point runs in a forked child: one warm-up step, then the timed
steps (the loop's own elapsed time / steps); memory is the child's peak resident set above what it held
when it started (CPU), or torch's peak allocated (CUDA). Ratios are against the base point of the same
run. Writes bench/results/scaling.{json,md} and bench/results/scaling.svg.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
from dataclasses import asdict, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))
import benchlib  # noqa: E402
from benchlib import JobSpec  # noqa: E402

BASE = JobSpec(max_length=128, batch_size=8, num_virtual_tokens=20, rows=64)
SIZES = {"2x128": (2, 128), "4x256": (4, 256), "6x384": (6, 384), "8x512": (8, 512)}
AXES = {
    "virtual_tokens": ("num_virtual_tokens", [1, 20, 100, 400]),
    "sequence_length": ("max_length", [64, 128, 256, 512]),
    "batch_size": ("batch_size", [1, 4, 8, 16]),
    "model_size": ("model", list(SIZES)),
}
QUICK_AXES = {"virtual_tokens": [1, 20, 100], "sequence_length": [64, 128, 256], "batch_size": [1, 8],
              "model_size": ["2x128", "4x256"]}


def long_rows(n: int) -> list[dict]:
    rows = benchlib.load_rows(n=3 * n)
    return [{"input": " ".join(r["input"] for r in rows[3 * i:3 * i + 3]), "target": rows[3 * i]["target"]}
            for i in range(n)]


def job_for(field: str, value) -> JobSpec:
    if field == "model":
        layers, width = SIZES[value]
        return replace(BASE, overrides={"n_layer": layers, "n_embd": width, "n_head": width // 64,
                                        "n_positions": 1024})
    return replace(BASE, **{field: value}, overrides={**BASE.overrides, "n_positions": 1024})


def _child(job: JobSpec, steps: int, conn) -> None:
    import torch

    from softprompt_worker.methods.registry import method_class
    from softprompt_worker.tasks.registry import task_class
    from softprompt_worker.training.loop import TrainingConfig, train

    start_rss = _rss_bytes()
    rows = long_rows(job.rows)
    frozen = benchlib.frozen_model(job)
    cls = method_class(job.method)
    out = {}
    for n in (1, steps):  # warm-up, then timed
        torch.manual_seed(job.seed)
        method = cls(cls.config_class.from_dict({"num_virtual_tokens": job.num_virtual_tokens}), frozen)
        task = task_class("generation")(method, {"max_length": job.max_length}, rows, [])
        if frozen.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        summary = train(method, task, TrainingConfig.from_dict({**job.training(), "steps": n, "log_every": n}))
        out = {"s_per_step": summary["elapsed_s"] / n, "tokens_per_s": summary["tokens"] / summary["elapsed_s"]}
    if frozen.device.type == "cuda":
        out["peak_memory_mib"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        out["peak_memory_mib"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - start_rss) / 2**20
    out["params"] = sum(p.numel() for p in frozen.model.parameters())
    conn.send(out)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def measure(job: JobSpec, steps: int) -> dict:
    ctx = mp.get_context("fork")  # the parent computes nothing with torch, so forking is safe
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(job, steps, send))
    proc.start()
    out = recv.recv()
    proc.join()
    return out


def svg_chart(results: dict) -> str:
    """Four small panels (one per axis): ms/step (solid) and peak memory (dashed), each scaled to its max."""
    W, H, pad = 260, 180, 34
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{4 * W}" height="{H + 40}" font-family="sans-serif" '
             'font-size="11">', f'<text x="8" y="14" font-size="13">Prompt tuning step: time (solid, ms) and peak '
             'memory (dashed, MiB) vs each axis; base point marked</text>']
    for k, (axis, points) in enumerate(results.items()):
        x0, y0 = k * W + pad, 30
        w, h = W - pad - 12, H - 40
        parts.append(f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#ccc"/>')
        parts.append(f'<text x="{x0 + w / 2}" y="{y0 + h + 28}" text-anchor="middle">{axis}</text>')
        n = len(points)
        for key, color, dash in (("ms_per_step", "#1f77b4", ""), ("peak_memory_mib", "#d62728", ' stroke-dasharray="4 3"')):
            top = max(p[key] for p in points) or 1
            xy = [(x0 + (i + 0.5) * w / n, y0 + h - h * p[key] / top) for i, p in enumerate(points)]
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2"{dash} points="'
                         + " ".join(f"{x:.1f},{y:.1f}" for x, y in xy) + '"/>')
            for (x, y), p in zip(xy, points):
                parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}"/>'
                             f'<text x="{x:.1f}" y="{y - 4:.1f}" text-anchor="middle" fill="{color}" font-size="9">'
                             f'{p[key]:.0f}</text>')
        for i, p in enumerate(points):
            bold = ' font-weight="bold"' if p["base"] else ""
            parts.append(f'<text x="{x0 + (i + 0.5) * w / n:.1f}" y="{y0 + h + 13}" text-anchor="middle"'
                         f'{bold}>{p["value"]}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def markdown(results: dict, record: dict) -> str:
    lines = ["# Scaling: prompt-tuning training step (CPU)", "",
             f"{record['date']} · {record['machine']['cpu']}, {record['machine']['cores']} cores, load "
             f"{record['machine'].get('loadavg')} · torch {record['versions']['torch']}, transformers "
             f"{record['versions']['transformers']} · base: tiny gpt2 4x256, 20 virtual tokens, 128 tokens/row, "
             "batch 8, f32. Ratios are against the base point of the same run. Noisy shared machine: "
             "read trends, not digits.", "", "![chart](scaling.svg)", "",
             "| axis | value | ms/step | x base | tokens/s | peak MiB | x base |", "|---|---|---|---|---|---|---|"]
    bases = [next(p for p in points if p["base"])["ms_per_step"] for points in results.values()]
    lines[2] += (f" The base point is measured once per axis: {', '.join(f'{b:.0f}' for b in bases)} ms/step, "
                 "which is the run's noise on time; memory is steadier.")
    for axis, points in results.items():
        base = next(p for p in points if p["base"])
        for p in points:
            lines.append(f"| {axis} | {p['value']}{' (base)' if p['base'] else ''} | {p['ms_per_step']:.0f} | "
                         f"{p['ms_per_step'] / base['ms_per_step']:.2f} | {p['tokens_per_s']:.0f} | "
                         f"{p['peak_memory_mib']:.0f} | {p['peak_memory_mib'] / max(base['peak_memory_mib'], 1e-9):.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer points and steps (~30-60 s)")
    args = ap.parse_args()
    steps = 2 if args.quick else 3
    results: dict[str, list[dict]] = {}
    for axis, (field, values) in AXES.items():
        values = QUICK_AXES[axis] if args.quick else values
        base_value = "4x256" if field == "model" else getattr(BASE, field)
        results[axis] = []
        for value in values:
            m = measure(job_for(field, value), steps)
            point = {"value": value, "base": value == base_value, "ms_per_step": 1e3 * m["s_per_step"], **m}
            results[axis].append(point)
            print(f"{axis:16s} {value!s:>6}  {point['ms_per_step']:8.0f} ms/step  {m['tokens_per_s']:7.0f} tok/s  "
                  f"{m['peak_memory_mib']:7.0f} MiB", flush=True)
    record = {"versions": benchlib.versions(), "base": asdict(BASE), "steps": steps, "quick": args.quick,
              "results": results}
    path = benchlib.write_result("scaling", record)
    import json

    record = json.loads(path.read_text())
    (benchlib.RESULTS / "scaling.md").write_text(markdown(results, record))
    (benchlib.RESULTS / "scaling.svg").write_text(svg_chart(results))
    print(f"wrote {path.relative_to(benchlib.ROOT)}, scaling.md, scaling.svg")


if __name__ == "__main__":
    main()
