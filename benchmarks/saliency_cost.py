"""Benchmark: what issue 24's per-experiment images add to one evaluate run, against that run's own time.

Run from the repository root:  python3 -m benchmarks.saliency_cost [--recipes vgg16_finetune resnet18_scratch] [--repeats 3]

The defaults' face task (1,000 generated images, 64 px, stratified 70/15/15 split: 150 test images). Each
repeat runs, in one fresh `python` process as `dvc repro` starts the evaluate stage, the evaluate stage's work
(imports, model from its saved state dict, predictions, scores with bootstrap intervals, its files), then the
new work in the same process: Grad-CAM from the activations evaluate's forward pass recorded (captum's import
included), the class mean maps and the saliency PNG; the same Grad-CAM computed standalone (its own forward
pass, as `facelab predict --explain` does); the mistake gallery; ECE with its interval and the reliability
diagram. Weights are random (weights: none, untrained): the cost does not depend on what the weights say.
"""
from __future__ import annotations

import argparse
import importlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from facelab import paths
from facelab.data.batches import to_input
from facelab.data.faces import generate_face_identity
from facelab.data.split import stratified_split
from facelab.evaluation.scores import class_report, confusion, split_scores, zscore
from facelab.evaluation.stats import BOOTSTRAP, METRICS, bootstrap_ci, collapse
from facelab.files import write_csv, write_json
from facelab.models import build_model, trained_model
from facelab.params import Split, parse_recipe

ROOT = Path(__file__).resolve().parents[1]


def prepare(folder: Path, recipes: list[str]) -> None:
    """The face task's test split and one random-weight model per recipe, as evaluate would find them."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    data, seed = raw["data"]["face"], raw.get("seed", 0)
    gen = data["generated"]
    images, labels = generate_face_identity(gen["n_images"], gen["target_fraction"], gen["n_identities"],
                                            data["img_size"], seed)
    test = stratified_split(labels, Split(**data["split"]), seed, tuple(data["classes"]))["test"]
    np.save(folder / "test_x.npy", images[test])
    np.save(folder / "test_y.npy", labels[test])
    for name in recipes:
        recipe = {**raw["models"][name], "weights": "none"}
        torch.manual_seed(seed)
        torch.save(build_model(parse_recipe(recipe), len(data["classes"])).state_dict(), folder / f"{name}.pt")
        (folder / f"{name}.json").write_text(json.dumps({"recipe": recipe, "classes": data["classes"],
                                                         "batch_size": raw["train"]["eval_batch_size"],
                                                         "threads": raw["train"]["threads"]}))


def worker(folder: Path, name: str) -> dict:
    """One evaluate process: the evaluate stage's work, then the new images; seconds of each new step."""
    seconds = {}

    def timed(step, work):
        start = time.perf_counter()
        result = work()
        seconds[step] = time.perf_counter() - start
        return result

    # pyplot first: every figure needs it, and captum's import would otherwise load it and take its time
    timed("pyplot_import", lambda: importlib.import_module("facelab.evaluation.mosaic").pyplot())
    saliency = timed("captum_import", lambda: importlib.import_module("facelab.evaluation.saliency"))
    info = json.loads((folder / f"{name}.json").read_text())
    torch.set_num_threads(info["threads"])
    classes, batch_size, arch = info["classes"], info["batch_size"], info["recipe"]["arch"]
    pixels = torch.from_numpy(np.load(folder / "test_x.npy"))
    labels = torch.from_numpy(np.load(folder / "test_y.npy"))
    logits, activations = evaluate(folder, name, pixels, labels, info, saliency)
    evaluated = time.perf_counter()  # evaluate's work ends here; all that follows is new

    out = paths.plots("face", name, folder)
    probabilities = torch.softmax(logits, 1).double().numpy()
    predicted, actual = logits.argmax(1).numpy(), labels.numpy()
    names = [f"face_{i:04d}.png" for i in range(len(actual))]
    cells = timed("gallery", lambda: importlib.import_module("facelab.reporting.gallery").mistake_gallery(
        pixels.numpy(), actual, predicted, probabilities, names, classes, out / "mistakes.png"))
    gallery = [i for cell in cells for i in cell["index"]]
    model = trained_model(parse_recipe(info["recipe"]), len(classes),
                          torch.load(folder / f"{name}.pt", weights_only=True)).eval()
    result = timed("cams", lambda: saliency.experiment_saliency(
        saliency.network_after(model, arch), activations, pixels.numpy(), actual, predicted, gallery,
        len(classes), batch_size))
    timed("saliency_figure", lambda: saliency.saliency_figure(result, classes, [names[i] for i in gallery], name,
                                                              out / "saliency.png"))
    timed("standalone_cams", lambda: saliency.cams(model, arch, to_input(pixels), predicted, batch_size))
    timed("calibration", lambda: calibration(probabilities, actual, name, out / "reliability.png"))
    return {"seconds": seconds, "after_evaluate": time.perf_counter() - evaluated, "test_images": len(actual),
            "gallery": len(gallery)}


def calibration(probabilities, actual, title: str, path: Path) -> None:
    """ECE, its interval and the reliability diagram; torchmetrics' import counted with them."""
    from facelab.evaluation.calibration import ECE_BINS, ece, ece_ci, reliability_diagram

    ece(probabilities, actual)
    ece_ci(probabilities, actual, ECE_BINS, **BOOTSTRAP)
    reliability_diagram(probabilities, actual, ECE_BINS, title, path)


def evaluate(folder: Path, name: str, pixels, labels, info: dict, saliency) -> tuple[torch.Tensor, torch.Tensor]:
    """The evaluate stage's work, from the library calls it makes: the model from its state dict, one forward
    pass in eval_batch_size batches (recording the last block's activations, as the wired stage will), the
    scores, the two bootstrap intervals, the collapse check, and its files. Returns logits and activations."""
    classes, batch_size, k = info["classes"], info["batch_size"], len(info["classes"])
    model = trained_model(parse_recipe(info["recipe"]), k, torch.load(folder / f"{name}.pt", weights_only=True))
    model.eval()
    x = to_input(pixels)
    with torch.no_grad(), saliency.recording(saliency.target_layer(model, info["recipe"]["arch"])) as seen:
        logits = torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    loss = torch.nn.functional.cross_entropy(logits, labels).item()
    actual, predicted = labels.numpy(), logits.argmax(1).numpy()
    raw = confusion(actual, predicted, k)
    metrics = {"test": {**split_scores(actual, predicted, loss, k),
                        **{f"{m}_ci": list(bootstrap_ci(actual, predicted, k, m, **BOOTSTRAP)) for m in METRICS}},
               "collapsed": collapse(predicted, actual, k, names=classes)["collapsed"]}
    outputs = paths.evaluate_outputs("face", name, folder)
    for path in outputs.values():
        path.parent.mkdir(parents=True, exist_ok=True)  # dvc creates an out's folder before the stage runs
    write_json(outputs["metrics"], metrics)
    write_json(outputs["classes"], class_report(actual, predicted, tuple(classes)))
    write_json(outputs["confusion"], {"classes": classes, "raw": raw.tolist(), "zscore": zscore(raw).tolist()})
    write_csv(outputs["predictions"], pd.DataFrame({"actual": [classes[i] for i in actual],
                                                    "predicted": [classes[i] for i in predicted]}))
    return logits, torch.cat(seen)


def measure(folder: Path, name: str) -> dict:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "benchmarks.saliency_cost", "--worker", str(folder), name],
                          cwd=ROOT, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    report = json.loads(done.stdout.strip().splitlines()[-1])
    before = report["seconds"]["pyplot_import"] + report["seconds"]["captum_import"]  # new, timed before evaluate
    return {**report, "evaluate": wall - report["after_evaluate"] - before}


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
        folder = Path(tmp)
        prepare(folder, args.recipes)
        print("| recipe | test images | evaluate s | Grad-CAM from evaluate's pass s | saliency PNG s "
              "| captum import s "
              "| saliency / evaluate | standalone Grad-CAM s | gallery s | ECE + CI + diagram s | pyplot import s |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for name in args.recipes:
            runs = [measure(folder, name) for _ in range(args.repeats)]
            med = {key: statistics.median(r["seconds"][key] for r in runs) for key in runs[0]["seconds"]}
            evaluate = statistics.median(r["evaluate"] for r in runs)
            share = statistics.median((r["seconds"]["captum_import"] + r["seconds"]["cams"]
                                       + r["seconds"]["saliency_figure"]) / r["evaluate"] for r in runs)
            print(f"| {name} | {runs[0]['test_images']} | {evaluate:.1f} | {med['cams']:.2f} | "
                  f"{med['saliency_figure']:.2f} | {med['captum_import']:.2f} | {share:.1%} | "
                  f"{med['standalone_cams']:.2f} | {med['gallery']:.2f} | {med['calibration']:.2f} | "
                  f"{med['pyplot_import']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
