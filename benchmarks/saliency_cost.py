"""Benchmark: what issue 24's explanations (calibration, mistake gallery, Grad-CAM saliency) cost inside one evaluate run.

Run from the repository root:  python3 -m benchmarks.saliency_cost [--recipes vgg16_finetune resnet18_scratch] [--repeats 3]

The defaults' face task (params.yaml: 1,000 generated images, 64 px, stratified 70/15/15 split: 150 test images),
prepared by facelab's own prepare; one random-weight model per recipe (weights: none, untrained: the cost does not
depend on what the weights say) saved as train saves it, with the temperature train fits on its validation logits.
Each repeat runs the real evaluate path, facelab.evaluation.experiment.evaluate_experiment, in one fresh `python`
process as `dvc repro` starts the evaluate stage; the whole process is timed from outside. Inside it, the new work
is timed by wrapping the functions evaluate_experiment calls for it: captum's and torchmetrics' imports (after
what evaluate imported before), `calibration` (test ECE
before/after with 2,000-resample intervals), `explanation` (mistake selection, Grad-CAM from the activations
evaluate's own forward pass recorded) and `draw` (reliability diagram, gallery and saliency PNGs, pyplot's import).
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


def prepare(root: Path, recipes: list[str]) -> None:
    """data/prepared/face and models/face/<recipe>.{pt,json} under root, as the prepare and train stages write them."""
    import dataclasses

    import torch

    from facelab import paths
    from facelab.data import prepare as preparing
    from facelab.data.batches import load_prepared
    from facelab.files import read_json, write_json
    from facelab.modelfile import model_card, weights_bytes
    from facelab.models import build_model, weights_provenance
    from facelab.params import load_params
    from facelab.training.experiment import fit_calibration, model_settings

    params = load_params(ROOT / "params.yaml")
    prepared = paths.prepared("face", root)
    preparing.run("face", params.data["face"], params.seed, prepared)
    splits, classes = load_prepared(prepared)
    for name in recipes:
        recipe = dataclasses.replace(params.models[name], weights="none")
        torch.manual_seed(params.seed)
        model = build_model(recipe, len(classes)).eval()
        settings = model_settings("face", name, recipe, params.train, params.seed, classes,
                                  read_json(prepared / "classes.json"), weights_provenance(recipe))
        scores = {"loss": 0.0, "acc": 0.0, "macro_f1": 0.0}
        health = {"vanishing_gradients": False, "exploding_gradients": False, "frozen_layers": []}
        results = {"train": scores, "val": scores, "epochs": 1, "best_epoch": 1, "train_seconds": 0.0,
                   "images_per_second": 0.0, "health": health, "augment_applied": {}, "wandb": None,
                   **fit_calibration(model, splits["val"], params.train)}
        model_path = paths.model("face", name, root)
        model_path.parent.mkdir(parents=True, exist_ok=True)
        model_path.write_bytes(weights_bytes(model.state_dict()))
        write_json(paths.model_info("face", name, root), model_card(settings, results))
        for path in paths.evaluate_outputs("face", name, root).values():
            path.parent.mkdir(parents=True, exist_ok=True)  # dvc creates an out's folder before the stage runs


def worker(root: Path, name: str) -> dict:
    """One evaluate process: evaluate_experiment with the new steps timed; their seconds and the test size."""
    seconds = dict.fromkeys(NEW, 0.0)
    # what evaluate imported before issue 24 (torch, torchvision, pandas, scikit-learn come with these), untimed;
    # then the two libraries the explanations add, timed (matplotlib comes later, inside draw)
    import facelab.data.batches, facelab.evaluation.forward, facelab.evaluation.scores  # noqa: E401, F401
    import facelab.evaluation.stats, facelab.modelfile, facelab.models  # noqa: E401, F401
    start = time.perf_counter()
    import captum.attr  # noqa: F401
    import torchmetrics.functional.classification  # noqa: F401
    seconds["imports"] = time.perf_counter() - start

    from facelab.evaluation import experiment
    from facelab.params import load_params

    def timed(step, work):
        def run(*args, **kwargs):
            began = time.perf_counter()
            try:
                return work(*args, **kwargs)
            finally:
                seconds[step] += time.perf_counter() - began
        return run

    for step in NEW[1:]:
        setattr(experiment, step, timed(step, getattr(experiment, step)))
    batch_size = load_params(ROOT / "params.yaml").train.eval_batch_size
    result = experiment.evaluate_experiment("face", name, batch_size, root)
    return {"seconds": seconds, "test_images": result["details"]["test_images"],
            "gallery": len(result["explained"]["captions"])}


def measure(root: Path, name: str) -> dict:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "benchmarks.saliency_cost", "--worker", str(root), name],
                          cwd=ROOT, check=True, capture_output=True, text=True)
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "evaluate": time.perf_counter() - start}


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
        print("| recipe | test images | gallery images | evaluate process s | captum + torchmetrics import s | calibration s "
              "| explanation s | draw s | **new / evaluate** |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name in args.recipes:
            runs = [measure(root, name) for _ in range(args.repeats)]
            med = {key: statistics.median(r["seconds"][key] for r in runs) for key in NEW}
            share = statistics.median(sum(r["seconds"].values()) / r["evaluate"] for r in runs)
            print(f"| {name} | {runs[0]['test_images']} | {runs[0]['gallery']} | "
                  f"{statistics.median(r['evaluate'] for r in runs):.1f} | "
                  + " | ".join(f"{med[key]:.2f}" for key in NEW) + f" | **{share:.1%}** |", flush=True)


if __name__ == "__main__":
    main()
