"""Prepare at scale: facelab.data.prepare.prepare_task on N generated images for several N, each in a fresh process;
prints time and peak memory.

    python3 -m benchmarks.prepare_scale --counts 5000 10000 25000 50000 --img-size 64

Each count runs in a new interpreter, so its peak resident memory (ru_maxrss) is its own; the baseline is a new
interpreter that only imports facelab.data.prepare. "decoded" is the size of the uint8 pixels, N * img_size^2 * 3 bytes.
"load" is the time spent in prepare.load_images (for generated data: drawing the faces); "near-dup" the near-duplicate
search (perceptual hashes of every image, then the banded search: facelab.data.near); the rest is exact
de-duplication, splitting and writing data/prepared/<task>/.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.timing import timed
from facelab.data import prepare
from facelab.params import TASKS, parse_params, raw_params


def measure(task: str, n_images: int, img_size: int, params: Path) -> dict:
    """One prepare run (n_images > 0) or nothing (the baseline), in this process; its time and peak memory."""
    result = {"images": n_images, "seconds": 0.0, "load_seconds": 0.0, "near_seconds": 0.0}
    if n_images:
        raw = raw_params(params)
        raw["data"][task]["img_size"] = img_size
        raw["data"][task]["generated"]["n_images"] = n_images
        config = parse_params(raw)
        timers = {"load_images": "load_seconds", "hashes": "near_seconds", "near_dedupe": "near_seconds"}
        for name, key in timers.items():
            setattr(prepare, name, timed(getattr(prepare, name), result, key))
        with tempfile.TemporaryDirectory() as out:
            started = time.perf_counter()
            prepare.prepare_task(task, config.data[task], config.data_seed, Path(out) / task, Path(out) / "data.json")
            result["seconds"] = time.perf_counter() - started
    return {**result, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # Linux: KiB


def in_fresh_process(task: str, n_images: int, img_size: int, params: Path) -> dict:
    command = [sys.executable, "-m", "benchmarks.prepare_scale", "--task", task, "--img-size", str(img_size),
               "--params", str(params), "--child", str(n_images)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def table(runs: list[dict], baseline: dict, img_size: int) -> list[str]:
    lines = ["| images | seconds | s per 1,000 | of which load | of which near-dup (share) | peak RSS MiB "
             "| decoded MiB | peak - baseline MiB |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for run in runs:
        n = run["images"]
        decoded = n * img_size * img_size * 3 / 2**20
        lines.append(f"| {n:,} | {run['seconds']:.1f} | {1000 * run['seconds'] / n:.2f} | {run['load_seconds']:.1f} "
                     f"| {run['near_seconds']:.1f} ({run['near_seconds'] / run['seconds']:.1%}) "
                     f"| {run['peak_mib']:.0f} | {decoded:.0f} | {run['peak_mib'] - baseline['peak_mib']:.0f} |")
    return lines + [f"baseline (new interpreter, facelab.data.prepare imported): {baseline['peak_mib']:.0f} MiB"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=int, nargs="+", default=[5000, 10000, 25000, 50000])
    parser.add_argument("--task", choices=TASKS, default="face")
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)  # internal: one measurement, as JSON
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(measure(args.task, args.child, args.img_size, args.params)))
        return
    baseline = in_fresh_process(args.task, 0, args.img_size, args.params)
    runs = []
    for n in args.counts:
        runs.append(in_fresh_process(args.task, n, args.img_size, args.params))
        print(f"[prepare_scale] {n} images: {runs[-1]['seconds']:.1f} s", file=sys.stderr, flush=True)
    print(f"prepare@{args.task}, generated images at {args.img_size} px, each count in a fresh process:")
    print("\n".join(table(runs, baseline, args.img_size)))


if __name__ == "__main__":
    main()
