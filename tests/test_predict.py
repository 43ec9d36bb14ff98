"""Using trained models: `facelab predict` on image files and `facelab evaluate` on labelled folders, with tiny models
trained here and saved as the train stage saves them."""
import dataclasses
import io
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from facelab import app, paths
from facelab.accel import CPU, inference_accel
from facelab.commands import evaluate as external
from facelab.commands.inference import choose_classes, predict_files
from facelab.data import faces, prepare
from facelab.data.batches import Inputs, load_prepared
from facelab.errors import ModelFileError, UserError
from facelab.evaluation.forward import forward_logits
from facelab.files import read_json, write_json
from facelab.modelfile import load_trained
from facelab.models import trained_model
from facelab.names import SPLITS
from facelab.params import DataParams, Split, parse_params, parse_recipe
from tests.conftest import REAL_DATA, TINY_RECIPE, TINY_SEED, splits_of, tiny_raw_params

RECIPE, SEED = TINY_RECIPE, TINY_SEED
EMOTIONS = ("angry", "happy", "sad")
YALE, FER = REAL_DATA / "face-yaleb", REAL_DATA / "emotion-fer2013"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_models):
    """A root holding models/{emotion,face}/resnet18_scratch/seed42.{pt,json} (32 px, 1 epoch)."""
    root = tmp_path_factory.mktemp("trained")
    for task in ("emotion", "face"):
        tiny_models(task, root)
    return root


def model_file(root, task: str):
    return paths.model(task, RECIPE, SEED, root)


def write_photos(folder, n: int = 25, seed: int = 5) -> list:
    """Generated emotion faces at 80 px saved in class folders in the forms users have: RGB and grey PNG, a
    transparent PNG, a landscape crop, and a portrait JPEG whose EXIF orientation asks for a quarter turn."""
    images, labels = faces.generate_emotions(n, 6, 80, seed)
    files = []
    for i, (pixels, label) in enumerate(zip(images, labels)):
        image, kind = Image.fromarray(pixels), i % 5
        path = folder / EMOTIONS[label] / f"{i:03d}.{'jpg' if kind == 4 else 'png'}"
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == 1:
            image = image.convert("L")
        elif kind == 2:
            image.putalpha(Image.linear_gradient("L").resize(image.size))
        elif kind == 3:
            image = image.crop((0, 10, 80, 70))
        if kind == 4:
            exif = Image.Exif()
            exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
            image.crop((10, 0, 70, 80)).save(path, exif=exif, quality=95)
        else:
            image.save(path)
        files.append(path)
    return files


def prepared_photos(tmp_path):
    """write_photos' folder prepared as the folder source: (folder, splits, manifest in the arrays' row order)."""
    photos = tmp_path / "photos"
    write_photos(photos)
    data = DataParams(source="folder", path=str(photos), classes=EMOTIONS, img_size=32, split=Split(0.6, 0.2, 0.2),
                      max_bad_fraction=0.05, faces="none", faces_fallback="skip", min_side=16, near_duplicates="group",
                      cut_copies="search", label_issues="report")
    prepare.prepare_task("emotion", data, 0, tmp_path / "prepared")
    splits, _ = load_prepared(tmp_path / "prepared", 0, data.split)
    manifest = pd.read_csv(tmp_path / "prepared" / "manifest.csv")
    manifest["split"] = manifest["file"].map(splits_of(tmp_path / "prepared", 0, data.split))
    return photos, splits, pd.concat([manifest[manifest.split == split] for split in SPLITS], ignore_index=True)


def test_a_file_gets_the_logits_of_its_prepared_image(trained, tmp_path):
    """The key property: predict decodes a file exactly as prepare did, so the model sees the same input."""
    photos, splits, manifest = prepared_photos(tmp_path)
    assert len(manifest) == 25 and (manifest.split == "test").sum() >= 3
    info = read_json(model_file(trained, "emotion").with_suffix(".json"))
    model = trained_model(parse_recipe(info["settings"]["recipe"]), 3,  # rebuilt as the evaluate stage rebuilds it
                          torch.load(model_file(trained, "emotion"), weights_only=True))
    expected = torch.cat([forward_logits(model, Inputs(splits[s], None, 64, flips=False), 64) for s in SPLITS])
    files = [photos / name for name in manifest.file]
    got = predict_files(load_trained("emotion", RECIPE, model_file(trained, "emotion")), files, batch_size=4)
    assert got.files == [str(f) for f in files] and got.skipped == []
    torch.testing.assert_close(got.logits, expected)
    np.testing.assert_allclose(got.probabilities.sum(1), 1, rtol=1e-6)
    # calibrated as the evaluate stage calibrates: softmax(logits / the temperature saved by train)
    temperature = info["results"]["temperature"]
    assert got.temperature == temperature and temperature != 1.0
    np.testing.assert_allclose(got.probabilities, torch.softmax(expected / temperature, 1).numpy(),
                               rtol=1e-5, atol=1e-6)
    evaluated = external.evaluate_model(load_trained("emotion", RECIPE, model_file(trained, "emotion")),
                                        splits["test"], 64, manifest.file[manifest.split == "test"].tolist())
    test_rows = np.flatnonzero(manifest.split == "test")
    np.testing.assert_allclose(got.probabilities[test_rows], evaluated.explained["probabilities"], rtol=1e-5,
                               atol=1e-6)


def test_explain_writes_an_overlay_per_image_at_the_models_size_and_two_classes_maps_differ(trained, tmp_path):
    from facelab.commands.inference import explanation_name
    from facelab.data.batches import to_input
    from facelab.evaluation.saliency import cams, overlay

    photos = tmp_path / "photos"
    files = write_photos(photos, n=6)
    out = tmp_path / "explained"
    app.main(["predict", "--task", "emotion", "--recipe", RECIPE, "--model", str(model_file(trained, "emotion")),
              "--out", str(tmp_path / "p.csv"), "--explain", str(out), str(photos)])
    written = sorted(out.iterdir())
    names = pd.read_csv(tmp_path / "p.csv").file.tolist()
    assert [p.name for p in written] == sorted(explanation_name(n) for n in names) and len(written) == 6
    trained_model_ = load_trained("emotion", RECIPE, model_file(trained, "emotion"))
    for path in written:
        pixels = np.asarray(Image.open(path))
        assert pixels.shape == (trained_model_.img_size, trained_model_.img_size, 3)
    # the overlay of a class's map: two classes give two different pictures of the same face
    from facelab.commands.inference import decode_files
    decoded, _, _, _ = decode_files(files, trained_model_.img_size)
    images = to_input(torch.from_numpy(decoded))
    maps = {k: cams(trained_model_.model, "resnet18", images, [k] * len(files), 8) for k in (0, 1)}
    overlays = {k: np.stack([overlay(i, m) for i, m in zip(decoded, maps[k])]) for k in maps}
    assert not np.array_equal(overlays[0], overlays[1])
    assert np.abs(maps[0] - maps[1]).max() > 0.05
    # what --explain wrote is the overlay of the most probable class's map
    scored = predict_files(trained_model_, [photos / n.split("photos/", 1)[1] for n in names], 8)
    first = scored.probabilities[0].argmax()
    index = files.index(photos / names[0].split("photos/", 1)[1])
    want = overlay(decoded[index], maps[int(first)][index]) if first in maps else None
    if want is not None:
        got = np.asarray(Image.open(out / explanation_name(names[0])))
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 2


def test_csv_has_a_row_per_image_and_bad_files_are_listed_with_their_reason(trained, tmp_path, capsys):
    folder, single = tmp_path / "mixed", tmp_path / "single.png"
    images, _ = faces.generate_emotions(5, 2, 48, seed=3)
    Image.fromarray(images[0]).save(single)
    (folder / "nested").mkdir(parents=True)
    for i, pixels in enumerate(images[1:]):
        Image.fromarray(pixels).save(folder / ("nested" if i == 3 else "") / f"face{i}.png")
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.txt").write_text("not a picture")
    (folder / "broken.png").write_bytes((folder / "face0.png").read_bytes()[:200])
    (folder / "nested" / "again").symlink_to(folder, target_is_directory=True)  # a link loop: listed as skipped
    Image.fromarray(images[0][:10, :12]).save(folder / "thumb.png")  # under min_side (16): skipped as prepare does
    args = ["predict", "--task", "emotion", "--recipe", RECIPE, "--model", str(model_file(trained, "emotion")),
            str(single), str(folder)]
    app.main(args + ["--out", str(tmp_path / "out.csv")])
    frame, err = pd.read_csv(tmp_path / "out.csv"), capsys.readouterr().err
    names = [single] + [folder / n for n in ("face0.png", "face1.png", "face2.png", "nested/face3.png")]
    assert frame.file.tolist() == [str(n) for n in names]  # as given, then each folder's files in sorted order
    assert list(frame.columns) == ["file", "predicted", "p_angry", "p_happy", "p_sad"]
    probabilities = frame[["p_angry", "p_happy", "p_sad"]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(1), 1, atol=1e-5)
    assert frame.predicted.tolist() == [EMOTIONS[i] for i in probabilities.argmax(1)]
    counts = {m[1]: int(m[2]) for m in re.finditer(r"^predicted (\w+): (\d+)$", err, re.M)}
    assert counts == {name: int((frame.predicted == name).sum()) for name in EMOTIONS}
    assert f"skipped {folder / 'broken.png'}: truncated or corrupt (" in err
    assert f"skipped {folder / 'empty.png'}: empty file (the file has 0 bytes)" in err
    assert f"skipped {folder / 'notes.txt'}: not an image file (neither its suffix (.txt) nor its content" in err
    assert f"skipped {folder / 'nested' / 'again'}: link loop ('{folder / 'nested' / 'again'}' leads back to" in err
    assert f"skipped {folder / 'thumb.png'}: too small (12x10 pixels, under data.<task>.min_side = 16 " in err
    app.main(args)  # no --out: the same CSV on stdout
    assert capsys.readouterr().out == (tmp_path / "out.csv").read_text()
    app.main(args + ["--out", str(tmp_path)])  # an existing folder: the CSV goes inside it
    assert (tmp_path / "predictions.csv").read_text() == (tmp_path / "out.csv").read_text()
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:  # a path under a file: one line, no traceback
        app.main(args + ["--out", str(single / "out.csv")])
    assert stop.value.code != 0
    assert capsys.readouterr().err.startswith(f"error: --out '{single / 'out.csv'}': '{single}' is a file, "
                                              f"not a folder")


def test_threshold_predicts_the_second_class_from_its_probability_up(trained, tmp_path, capsys):
    images, _ = faces.generate_face_identity(16, 0.5, 4, 48, seed=2)
    for i, pixels in enumerate(images):
        Image.fromarray(pixels).save(tmp_path / f"{i:02d}.png")
    files = sorted(tmp_path.glob("*.png"))
    scored = predict_files(load_trained("face", RECIPE, model_file(trained, "face")), files, 8)
    p_target = scored.probabilities[:, 1]
    threshold = float(np.sort(p_target)[8])  # a probability that occurs: the boundary counts as target
    predicted = choose_classes(scored.probabilities, ("other", "target"), threshold)
    assert predicted.tolist() == (p_target >= threshold).astype(int).tolist() and predicted.sum() == 8
    base = ["predict", "--task", "face", "--recipe", RECIPE, "--model", str(model_file(trained, "face"))]
    for value, targets in (("0", 16), ("1.0", int((p_target >= 1).sum()))):
        app.main(base + ["--threshold", value, str(tmp_path)])
        frame = pd.read_csv(io.StringIO(capsys.readouterr().out))
        assert (frame.predicted == "target").sum() == targets
    for bad, message in ((["--threshold", "1.5"], "error: --threshold 1.5 is not a probability"),
                         (["--task", "emotion", "--model", str(model_file(trained, "emotion")), "--threshold", "0.5"],
                          "error: --threshold applies to two-class models; this one has 3 classes")):
        with pytest.raises(SystemExit) as stopped:
            app.main(base + bad + [str(tmp_path)])
        err = capsys.readouterr().err.splitlines()
        assert stopped.value.code == 1 and len(err) == 1 and err[0].startswith(message)


def test_a_model_file_that_does_not_fit_its_saved_params_is_a_clear_error(trained, tmp_path, capsys):
    folder = tmp_path / "models" / "face"
    folder.mkdir(parents=True)
    weights, info = folder / f"{RECIPE}.pt", folder / f"{RECIPE}.json"
    shutil.copy(model_file(trained, "emotion"), weights)  # 3-class weights beside the 2-class model's params
    shutil.copy(model_file(trained, "face").with_suffix(".json"), info)
    with pytest.raises(ModelFileError) as error:
        load_trained("face", RECIPE, weights)
    message = str(error.value)
    assert message.startswith(f"'{weights}' does not fit the recipe saved beside it (resnet18, head_hidden 0, "
                              f"2 classes)")
    assert "2 shape(s) differ: fc.weight is (3, 512) in the file, (2, 512) for the recipe" in message
    assert "rebuild both with `dvc repro run@face-resnet18_scratch-<seed>`" in message
    edited = read_json(info)
    # the recipe changed after training: a two-layer head the file lacks
    edited["settings"]["recipe"]["head_hidden"] = 16
    write_json(info, edited)
    shutil.copy(model_file(trained, "face"), weights)
    with pytest.raises(ModelFileError, match=r"4 missing key\(s\): fc\.0\.weight, fc\.0\.bias, fc\.3\.weight \.\.\.; "
                                             r"2 unexpected key\(s\): fc\.weight, fc\.bias;"):
        load_trained("face", RECIPE, weights)
    with pytest.raises(SystemExit) as stopped:  # through the command: one error line, exit status 1
        app.main(["predict", "--task", "face", "--recipe", RECIPE, "--model", str(weights), str(tmp_path)])
    err = capsys.readouterr().err.splitlines()
    assert stopped.value.code == 1 and len(err) == 1 and err[0].startswith(f"error: '{weights}' does not fit")


def test_missing_unreadable_or_foreign_model_files_say_how_to_get_the_right_one(trained, tmp_path):
    with pytest.raises(ModelFileError, match=r"model file '.*nothing\.pt' does not exist; build it with "
                                             r"`dvc repro run@emotion-resnet18_scratch-<seed>` \(or `dvc pull "
                                             r"models/emotion/resnet18_scratch/seed<seed>\.pt`\)"):
        load_trained("emotion", RECIPE, tmp_path / "nothing.pt")
    with pytest.raises(ModelFileError, match=r"is the model of task 'emotion', recipe 'resnet18_scratch', not of "
                                             r"--task face --recipe resnet18_scratch"):
        load_trained("face", RECIPE, model_file(trained, "emotion"))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a model")
    shutil.copy(model_file(trained, "emotion").with_suffix(".json"), garbage.with_suffix(".json"))
    with pytest.raises(ModelFileError, match=r"'.*garbage\.pt' cannot be read as a PyTorch state dict"):
        load_trained("emotion", RECIPE, garbage)
    garbage.with_suffix(".json").unlink()
    with pytest.raises(ModelFileError, match=r"'.*garbage\.json' \(the settings saved beside the model file\) "
                                             r"does not exist"):
        load_trained("emotion", RECIPE, garbage)
    old = read_json(model_file(trained, "emotion").with_suffix(".json"))
    write_json(garbage.with_suffix(".json"), {**old["settings"], **old["results"]})  # the shape before settings/results
    shutil.copy(model_file(trained, "emotion"), garbage)
    with pytest.raises(ModelFileError, match=r"'.*garbage\.json' was written by an older facelab "
                                             r"\(no separate settings and results\); "
                                             r"rebuild it with `dvc repro run@emotion-resnet18_scratch-<seed>`"):
        load_trained("emotion", RECIPE, garbage)


def test_device_choice_is_fp32_everywhere_and_cuda_without_a_gpu_is_an_error():
    assert inference_accel("auto", cuda_available=False) == CPU and inference_accel("cpu", cuda_available=True) == CPU
    gpu = inference_accel("auto", cuda_available=True)
    assert gpu.device.type == "cuda" and gpu.amp_dtype is None and not gpu.channels_last  # the CPU's numbers
    with pytest.raises(UserError, match="--device cuda, but torch sees no CUDA device"):
        inference_accel("cuda", cuda_available=False)


@pytest.mark.e2e
@pytest.mark.skipif(not (YALE / "target").is_dir(), reason=f"real photos not present: {YALE / 'target'} "
                                                           f"(the shared test data)")
def test_console_script_scores_real_photos(trained, tmp_path):
    script = shutil.which("facelab")
    assert script, "the facelab console script is not installed; run pip install -e ."
    args = ["predict", "--task", "face", "--recipe", RECIPE, "--model", str(model_file(trained, "face")),
            "--device", "cpu", str(YALE)]
    run = subprocess.run([script, *args], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    frame = pd.read_csv(io.StringIO(run.stdout))
    assert len(frame) == 384 and list(frame.columns) == ["file", "predicted", "p_other", "p_target"]
    assert frame.file.iloc[0] == str(YALE / "other" / "yaleB02_P00A+050E-40.png")
    np.testing.assert_allclose(frame[["p_other", "p_target"]].sum(axis=1), 1, atol=1e-5)
    counts = dict(re.findall(r"^predicted (other|target): (\d+)$", run.stderr, re.M))
    assert {k: int(v) for k, v in counts.items()} == frame.predicted.value_counts().reindex(
        ["other", "target"], fill_value=0).to_dict()
    assert f"skipped {YALE / 'SOURCE.txt'}: not an image file (" in run.stderr  # the folder's notes are not a photo
    module = subprocess.run([sys.executable, "-m", "facelab.app", *args], capture_output=True, text=True)
    assert module.returncode == 0 and module.stdout == run.stdout


def test_evaluate_scores_a_labelled_folder_into_the_evaluate_stages_files(trained, tmp_path, monkeypatch, capsys):
    photos = tmp_path / "photos"
    first = write_photos(photos)[0]
    (photos / "sad" / "broken.png").write_bytes(first.read_bytes()[:200])  # a PNG cut short
    Image.open(first).crop((0, 0, 12, 10)).save(photos / "sad" / "thumb.png")  # under the model's min_side (16)
    monkeypatch.chdir(tmp_path)
    model = model_file(trained, "emotion")
    app.main(["evaluate", "--task", "emotion", "--recipe", RECIPE, "--data", str(photos), "--model", str(model)])
    name = external.default_name(photos.resolve())  # photos-<8 hex of the full path>
    out = paths.external_outputs("emotion", RECIPE, SEED, name)
    assert out["metrics"].as_posix() == f"metrics/emotion/external/{name}/resnet18_scratch/seed42.json"
    metrics, details = read_json(out["metrics"]), read_json(out["details"])
    predictions = pd.read_csv(out["predictions"])
    files = [p for name in EMOTIONS for p in sorted((photos / name).iterdir())
             if p.name not in ("broken.png", "thumb.png")]
    assert predictions.actual.tolist() == [p.parent.name for p in files]  # the folder source's order
    scored = predict_files(load_trained("emotion", RECIPE, model), files, 8)  # the predict command agrees
    assert predictions.predicted.tolist() == [EMOTIONS[i] for i in scored.logits.argmax(1)]
    assert list(metrics) == list(stage_metrics(trained))
    assert metrics["test"]["acc"] == pytest.approx((predictions.actual == predictions.predicted).mean())
    raw = np.array(read_json(out["confusion"])["raw"])
    assert raw.sum() == 25 and np.trace(raw) == (predictions.actual == predictions.predicted).sum()
    support = {n: read_json(out["classes"])[n]["support"] for n in EMOTIONS}
    assert support == predictions.actual.value_counts().to_dict()
    assert details["test_images"] == 25 and details["data"]["images"] == 25
    skipped = [(s["file"], s["reason"]) for s in details["data"]["skipped"]]
    assert skipped == [("sad/broken.png", "truncated or corrupt"), ("sad/thumb.png", "too small")]
    # calibrated with the model's saved temperature, as the evaluate stage calibrates, and its three images
    assert details["calibration"]["temperature"] == load_trained("emotion", RECIPE, model).temperature
    assert metrics["test"]["ece"] == details["calibration"]["test"]["after"]["ece"]
    assert all(Image.open(out[key]).size[0] > 200 for key in ("reliability", "gallery", "saliency"))
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith(f"[emotion/{RECIPE}/seed{SEED} on photos] acc {metrics['test']['acc']:.4f} [95% CI ")
    assert line.endswith("(25 images, 2 skipped)")


def stage_metrics(trained) -> dict:
    """The evaluate stage's metrics for a prepared test split, to compare the file's layout with."""
    from facelab.evaluation.experiment import evaluate_model
    from facelab.evaluation.explain import names_of_test_images
    fractions = parse_params(tiny_raw_params()).data["emotion"].split
    splits, _ = load_prepared(paths.prepared("emotion", trained), SEED, fractions)
    model = model_file(trained, "emotion")
    return evaluate_model(load_trained("emotion", RECIPE, model), splits["test"], 64,
                          names_of_test_images(paths.prepared("emotion", trained), SEED,
                                               fractions)).metrics.model_dump()


def test_evaluate_refuses_a_folder_without_the_models_classes_and_a_bad_name(trained, tmp_path, capsys):
    photos = tmp_path / "photos"
    write_photos(photos, n=6)
    shutil.rmtree(photos / "sad")
    base = ["evaluate", "--task", "emotion", "--recipe", RECIPE, "--model", str(model_file(trained, "emotion"))]
    for args, message in (
            (["--data", str(photos)], f"error: --data '{photos}' has no folder for class(es) ['sad']; the model's "
                                      f"classes are ['angry', 'happy', 'sad']"),
            (["--data", str(photos), "--name", "../up"], "error: --name '../up' is not a plain folder name")):
        with pytest.raises(SystemExit) as stopped:
            app.main(base + args)
        err = capsys.readouterr().err.splitlines()
        assert stopped.value.code == 1 and len(err) == 1 and err[0].startswith(message)


@pytest.mark.e2e  # 3,000 real photos
@pytest.mark.skipif(not FER.is_dir(), reason=f"real photos not present: {FER} (the shared test data)")
def test_evaluate_on_real_fer2013_photos(trained, tmp_path):
    result, out = external.evaluate_folder("emotion", RECIPE, FER, model=model_file(trained, "emotion"), root=tmp_path)
    name = external.default_name(FER.resolve())
    assert out["metrics"] == tmp_path / f"metrics/emotion/external/{name}/resnet18_scratch/seed42.json"
    assert read_json(out["metrics"]) == result.metrics.model_dump(mode="json")
    data = result.details.data
    assert result.details.test_images == 3000 and data is not None and data["skipped"] == []
    assert {n: result.classes[n]["support"] for n in EMOTIONS} == {n: 1000 for n in EMOTIONS}
    assert any("SOURCE.txt" in w for w in data["warnings"])  # named, not scored
    assert np.array(result.confusion.raw).sum() == 3000


def test_a_model_trained_with_tta_flip_is_run_with_it_by_predict_and_by_evaluate(trained, tmp_path):
    """The model's card, not today's params, says how to run it: the evaluate stage and facelab predict both
    average each image with its mirror when the card's settings.train.tta_flip is true."""
    from facelab.evaluation.experiment import evaluate_model
    photos, splits, manifest = prepared_photos(tmp_path)
    card = read_json(model_file(trained, "emotion").with_suffix(".json"))
    card["settings"]["train"]["tta_flip"] = True
    flipped = tmp_path / "flipped.pt"
    shutil.copy(model_file(trained, "emotion"), flipped)
    write_json(flipped.with_suffix(".json"), card)
    loaded = load_trained("emotion", RECIPE, flipped)
    test_files = [photos / name for name in manifest.file[manifest.split == "test"]]
    got = predict_files(loaded, test_files, batch_size=4)
    with_flip = forward_logits(loaded.model, Inputs(splits["test"], None, 64, flips=False), 64, True)
    torch.testing.assert_close(got.logits, with_flip)
    assert not torch.allclose(with_flip,
                              forward_logits(loaded.model, Inputs(splits["test"], None, 64, flips=False), 64))
    scored = evaluate_model(loaded, splits["test"], 64, [str(f) for f in test_files])
    assert scored.details.tta_flip is True
    assert list(scored.predictions.predicted) == [EMOTIONS[i] for i in got.probabilities.argmax(1)]


def test_the_evaluate_stage_and_facelab_evaluate_refuse_a_wrong_normalisation_with_the_same_error(trained, tmp_path):
    """Both load the model through facelab.modelfile.load_trained, so a card the command refuses, the stage refuses
    with the same words."""
    from facelab.evaluation.experiment import evaluate_experiment
    shutil.copytree(paths.prepared("emotion", trained), paths.prepared("emotion", tmp_path))
    model = paths.model("emotion", RECIPE, SEED, tmp_path)
    model.parent.mkdir(parents=True)
    shutil.copy(model_file(trained, "emotion"), model)
    card = read_json(model_file(trained, "emotion").with_suffix(".json"))
    card["settings"]["normalisation"] = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
    write_json(model.with_suffix(".json"), card)
    errors = []
    for evaluate in (lambda: evaluate_experiment("emotion", RECIPE, SEED, 64, tmp_path),
                     lambda: external.evaluate_folder("emotion", RECIPE, tmp_path, model=model, root=tmp_path)):
        with pytest.raises(ModelFileError) as error:
            evaluate()
        errors.append(str(error.value))
    assert errors[0] == errors[1]
    assert errors[0].startswith(f"'{model.with_suffix('.json')}': normalisation {{'mean': [0.5, 0.5, 0.5], 'std': "
                                f"[0.5, 0.5, 0.5]}} is not the ImageNet mean/std")
    assert not paths.evaluate_outputs("emotion", RECIPE, SEED, tmp_path)["metrics"].exists()


def test_a_photo_without_a_face_is_skipped_or_scored_whole_as_the_models_training_photos_were(trained, tmp_path):
    """The card records prepare's faces_fallback; predict follows it (before, predict always skipped the photo)."""
    from facelab.commands.predict import summary_lines
    from facelab.data.images import NO_FACE
    model = load_trained("face", RECIPE, model_file(trained, "face"))
    assert read_json(paths.prepared_classes(paths.prepared("face", trained)))["faces_fallback"] == "skip"
    assert model.faces_fallback == "skip" == model.card.settings.faces_fallback
    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(noise)
    for fallback in ("skip", "center"):
        settings = model.card.settings.model_copy(update={"faces": "detect", "faces_fallback": fallback})
        detecting = dataclasses.replace(model, card=model.card.model_copy(update={"settings": settings}))
        scored = predict_files(detecting, [noise], 8)
        if fallback == "skip":
            assert scored.files == [] and [s.reason for s in scored.skipped] == [NO_FACE]
        else:
            assert scored.files == scored.centred == [str(noise)] and scored.skipped == []
            frame = pd.DataFrame({"predicted": ["other"]})
            assert f"no face found in {noise}: scored its centre square" in "\n".join(
                summary_lines(frame, tuple(model.classes), scored))
