"""Startup a run's training saves by running directly instead of under torchrun (one process): the same tiny
training (emotion, resnet18_scratch, 1 epoch, 32 px) timed both ways, alternating, median of --repeats. Both
train only: a torchrun rank (RANK set) does not score, so the direct process gets RANK=0 of a world of one too."""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from facelab.data import prepare
from facelab.params import parse_params
from tests.conftest import ROOT, tiny_raw_params

COMMANDS = {"direct": [sys.executable, "-m", "stages.run"],
            "torchrun": [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "1",
                         "--rdzv-backend", "c10d", "--rdzv-endpoint", "localhost:0", "-m", "stages.run"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    raw = tiny_raw_params()
    raw["models"]["resnet18_scratch"]["epochs"] = 1
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "params.yaml").write_text(yaml.safe_dump(raw))
        prepare.prepare_task("emotion", parse_params(raw).data["emotion"], raw["data_seed"],
                             root / "data" / "prepared" / "emotion")
        seconds: dict[str, list[float]] = {name: [] for name in COMMANDS}
        for _ in range(args.repeats):
            for name, command in COMMANDS.items():
                started = time.perf_counter()
                rank = {"RANK": "0", "WORLD_SIZE": "1"} if name == "direct" else {}
                subprocess.run([*command, "--task", "emotion", "--recipe", "resnet18_scratch",
                                "--seed", str(raw["seeds"][0])], cwd=root, check=True, capture_output=True,
                               env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", **rank})
                seconds[name].append(time.perf_counter() - started)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    print("| launcher | whole stage, s (median) | runs |\n|---|---|---|")
    for name, values in seconds.items():
        print(f"| {name} | {median[name]:.2f} | {', '.join(f'{v:.2f}' for v in values)} |")
    print(f"\nsaved per training stage: {median['torchrun'] - median['direct']:.2f} s "
          f"({median['torchrun'] / median['direct']:.2f}x the direct time under torchrun)")


if __name__ == "__main__":
    main()
