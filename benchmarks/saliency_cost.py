"""Benchmark: what issue 24's explanations cost inside one evaluate run, and Grad-CAM saliency's share alone.

Run from the repository root:
    python3 -m benchmarks.saliency_cost [--recipes vgg16_finetune resnet18_scratch] [--repeats 3]

The defaults' face task (params.yaml: 1,000 generated images, 64 px, stratified 70/15/15 split: 150 test images),
prepared by facelab's own prepare; one random-weight model per recipe (weights: none, untrained: the cost does not
depend on what the weights say) saved as train saves it, with the temperature train fits on its validation logits.
Each repeat runs the real evaluate path, facelab.evaluation.experiment.evaluate_experiment, in one fresh `python`
process as `dvc repro` starts the evaluate stage; the whole process is timed from outside. Inside it, the work is
timed by wrapping the functions evaluate calls:
- saliency alone: captum's import (after everything else evaluate imports, pyplot included), the recorded forward
  pass minus a plain one (the activation hook), `experiment_saliency` (Grad-CAM maps, class means, overlays) and
  `saliency_figure` (its PNG);
- all of issue 24's work: the above, `calibration` (test ECE before/after with 2,000-resample intervals), the rest
  of `explanation` (mistake selection) and of `draw` (reliability diagram and gallery PNGs), and pyplot's import.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NEW = ("imports", "calibration", "explanation", "draw")
SALIENCY = ("captum_import", "recording", "maps", "figure")


def prepare(root: Path, recipes: list[str]) -> None:
    """data/prepared/face and models/face/<recipe>.{pt,json} under root, as the prepare and train stages write them."""
    import dataclasses

    import torch

    from facelab import paths
    from facelab.data import prepare as preparing
    from facelab.data.batches import data_split, load_prepared
    from facelab.files import read_json, write_json
    from facelab.modelcard import ModelCard, ModelResults, WeightsProvenance
    from facelab.modelfile import weights_bytes
    from facelab.models import build_model, weights_provenance
    from facelab.params import load_params
    from facelab.training.experiment import fit_calibration, model_settings

    params = load_params(ROOT / "params.yaml")
    prepared = paths.prepared("face", root)
    seed, fractions = params.seeds[0], params.data["face"].split
    preparing.prepare_task("face", params.data["face"], params.data_seed, prepared)
    splits, classes = load_prepared(prepared, seed, fractions)
    for name in recipes:
        recipe = dataclasses.replace(params.models[name], weights="none")
        torch.manual_seed(seed)
        model = build_model(recipe, len(classes)).eval()
        settings = model_settings("face", name, recipe, params.train, seed, data_split(splits, fractions, classes),
                                  classes, read_json(prepared / "classes.json"),
                                  WeightsProvenance(**weights_provenance(recipe)))
        scores = {"loss": 0.0, "acc": 0.0, "macro_f1": 0.0}
        health: dict[str, object] = {"min_grad_norm": None, "max_grad_norm": None, "vanishing_gradients": False,
                                     "exploding_gradients": False, "frozen_layers": []}
        results = ModelResults(train=scores, val=scores, epochs=1, best_epoch=1, train_seconds=0.0,
                               images_per_second=0.0, health=health, augment_applied={}, wandb=None,
                               **fit_calibration(model, splits["val"], params.train))
        model_path = paths.model("face", name, seed, root)
        model_path.parent.mkdir(parents=True, exist_ok=True)
        model_path.write_bytes(weights_bytes(model.state_dict()))
        write_json(paths.model_info("face", name, seed, root), ModelCard(settings=settings, results=results).to_json())
        for path in paths.evaluate_outputs("face", name, seed, root).values():
            path.parent.mkdir(parents=True, exist_ok=True)  # dvc creates an out's folder before the stage runs


def worker(root: Path, name: str) -> dict:
    """One evaluate process: evaluate_experiment with its steps timed; their seconds and the test size."""
    seconds = dict.fromkeys(NEW + SALIENCY, 0.0)
    # what evaluate imported before issue 24 (torch, torchvision, pandas come with these), untimed
    import facelab.data.batches  # noqa: E401, F401
    import facelab.evaluation.forward
    import facelab.evaluation.scores
    import facelab.evaluation.stats  # noqa: E401, F401
    import facelab.modelcard  # noqa: F401
    import facelab.modelfile
    import facelab.models
    start = time.perf_counter()
    import matplotlib.pyplot  # noqa: F401  (the three PNGs need it; evaluate drew none before)
    seconds["imports"] = time.perf_counter() - start
    start = time.perf_counter()
    import facelab.evaluation.saliency  # noqa: F401  (captum.attr, imported without IPython)
    seconds["captum_import"] = time.perf_counter() - start

    from benchmarks.timing import timed
    from facelab.evaluation import experiment, explain, forward, saliency
    from facelab.params import load_params

    for step in NEW[1:]:
        setattr(experiment, step, timed(getattr(experiment, step), seconds, step))
    explain.experiment_saliency = timed(explain.experiment_saliency, seconds, "maps")
    explain.saliency_figure = timed(explain.saliency_figure, seconds, "figure")
    recording, extra = saliency.predict_recording, {"plain_pass": 0.0}

    def recorded(model, layer, inputs, batch_size, tta_flip):
        """The recorded pass, timed against a plain pass over the same split: the hook's cost."""
        began = time.perf_counter()
        forward.forward_logits(model, inputs, batch_size, tta_flip)
        plain = time.perf_counter() - began
        extra["plain_pass"] += plain
        began = time.perf_counter()
        result = recording(model, layer, inputs, batch_size, tta_flip)
        seconds["recording"] += max(0.0, time.perf_counter() - began - plain)
        return result

    experiment.predict_recording = recorded
    params = load_params(ROOT / "params.yaml")
    result = experiment.evaluate_experiment("face", name, params.seeds[0], params.train.eval_batch_size, root)
    seconds["explanation"] -= seconds["maps"]  # explanation and draw without their saliency parts
    seconds["draw"] -= seconds["figure"]
    # the plain pass is the benchmark's, not evaluate's: measure() takes it out of the process time
    return {"seconds": seconds, "plain_pass": extra["plain_pass"], "test_images": result.details.test_images,
            "gallery": len(result.explained["captions"])}


def measure(root: Path, name: str) -> dict:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "benchmarks.saliency_cost", "--worker", str(root), name],
                          cwd=ROOT, check=True, capture_output=True, text=True)
    run = json.loads(done.stdout.strip().splitlines()[-1])
    return {**run, "evaluate": time.perf_counter() - start - run["plain_pass"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=["vgg16_finetune", "resnet18_scratch"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(Path(args.worker[0]), args.worker[1])))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        prepare(root, args.recipes)
        print("| recipe | test images | evaluate process s | captum import s | activation hook s | Grad-CAM maps s "
              "| saliency PNG s | **saliency / evaluate** | all issue-24 work s | **all / evaluate** |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name in args.recipes:
            runs = [measure(root, name) for _ in range(args.repeats)]
            med = {key: statistics.median(r["seconds"][key] for r in runs) for key in NEW + SALIENCY}
            alone = [sum(r["seconds"][key] for key in SALIENCY) / r["evaluate"] for r in runs]
            everything = [sum(r["seconds"].values()) for r in runs]
            print(f"| {name} | {runs[0]['test_images']} | {statistics.median(r['evaluate'] for r in runs):.1f} | "
                  + " | ".join(f"{med[key]:.2f}" for key in SALIENCY)
                  + f" | **{statistics.median(alone):.1%}** | {statistics.median(everything):.2f} | "
                  f"**{statistics.median(a / r['evaluate'] for a, r in zip(everything, runs)):.1%}** |", flush=True)


if __name__ == "__main__":
    main()
