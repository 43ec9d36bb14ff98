import pytest

from facelab.errors import ParamsError
from facelab.params import RECIPES, TASKS, load_params, parse_params, raw_params
from tests.conftest import ROOT


def test_repository_params_load_with_all_tasks_and_recipes():
    params = load_params(ROOT / "params.yaml")
    assert set(params.data) == set(TASKS) and set(params.models) == set(RECIPES)
    assert params.models["vgg16_finetune"].frozen == ("features",)
    assert params.models["resnet18_scratch"].weights == "none"
    assert params.data["face"].classes == ("other", "target")


@pytest.mark.parametrize("edit, message", [
    (lambda r: r["models"]["resnet18_scratch"].update(learning_rat=0.1),
     "unknown key 'learning_rat'; did you mean 'lr'"),
    (lambda r: r["models"]["resnet18_scratch"].update(arch="resnet50"),
     "models.resnet18_scratch.arch: 'resnet50' is not one of"),
    (lambda r: r["data"]["face"]["split"].update(test=1.5), r"data.face.split.test: 1.5 must be inside \(0, 1\)"),
    (lambda r: r["data"]["face"]["split"].update(test=0.2), "must add up to 1"),
    (lambda r: r["data"]["emotion"].update(img_size=16), "data.emotion.img_size: 16 is under 32"),
    (lambda r: r["models"]["vgg16_finetune"].update(epochs="ten"), "models.vgg16_finetune.epochs: expected an integer"),
    (lambda r: r["wandb"].update(mode="cloud"), "wandb.mode: 'cloud' is not one of"),
    (lambda r: r["models"]["vgg16_finetune"].update(frozen=["featuers"]),
     r"^models.vgg16_finetune.frozen: 'featuers' is not a module of vgg16; did you mean 'features'\? "
     r"its top-level modules are \['features', 'avgpool', 'classifier'\]$"),
    (lambda r: r["models"]["resnet18_pretrained"].update(frozen=["features"]),
     r"^models.resnet18_pretrained.frozen: 'features' is not a module of resnet18; "),
    (lambda r: r["data"]["face"].update(img_size=100000),
     r"^data.face.img_size: 100000 is over 1024; use 1024 or less$"),
    (lambda r: r["data"]["face"].update(img_size=800),
     r"^data.face.img_size: 800 is over 512, the largest the generated faces are drawn at; use 512 or less$"),
    (lambda r: r["data"]["face"].update(faces="detect"),
     r"^data.face.faces: 'detect' finds faces in photos; the generated faces are already face crops"),
    (lambda r: r["data"]["face"].update(faces="yes"),
     r"^data.face.faces: 'yes' is not one of \['none', 'detect', 'align'\]$"),
    (lambda r: r["train"].update(vanishing_grad_norm=2.0, exploding_grad_norm=1.5),
     r"^train.exploding_grad_norm: 1.5 must be above vanishing_grad_norm \(2.0\)$"),
    (lambda r: r.update(data_seed=-1),
     r"^data_seed: -1 must be inside \[0, 4294967295\] \(numpy and scikit-learn seeds\)$"),
    (lambda r: r.update(seeds=[42, -1]), r"^seeds\[1\]: -1 must be inside \[0, 4294967295\]"),
    (lambda r: r.update(seeds=[]), r"^seeds: \[\] holds no seed; give at least one, e.g. \[42\]"),
    (lambda r: r.update(seeds=[1, 2, 1]), r"^seeds: \[1, 2, 1\] repeats \[1\]; each seed is one training run"),
    (lambda r: r.update(seeds=42), r"^seeds: expected a list, got 42"),
    (lambda r: r["data"]["face"].update(source="folder", path="/p", classes=["other", "."]),
     r"^data.face.classes: '.' is not a plain folder name; a class name is the name of a folder under data.face.path"),
    (lambda r: r["data"]["face"].update(source="folder", path="/p", classes=["other", "/data/happy"]),
     r"^data.face.classes: '/data/happy' is not a plain folder name"),
    (lambda r: r["data"]["face"].update(source="folder", path="/p", classes=["..", "b"]),
     r"^data.face.classes: '..' is not a plain folder name"),
    (lambda r: r["data"]["face"].update(source="folder", path=None), "source 'folder' needs a path"),
    (lambda r: r["data"]["face"].update(classes=["me", "others"]), "generated face data has classes"),
    (lambda r: r["models"].pop("resnet18_pretrained"), r"models: missing key\(s\) \['resnet18_pretrained'\]"),
    (lambda r: r["models"]["vgg16_finetune"].update(stem="small"),
     r"^models.vgg16_finetune.stem: 'small' is a stem for resnet18, not vgg16; use stem: imagenet$"),
    (lambda r: r["train"].update(ema=1.0), r"^train.ema: 1.0 must be inside \[0, 1\) \(the share of the average kept"),
    (lambda r: r["train"].update(mixup=-0.2), r"^train.mixup: -0.2 must be inside \[0, 10\]"),
    # data sources and quality
    (lambda r: r["data"]["face"].update(source="lfw2"),
     r"^data.face.source: 'lfw2' is not one of \['generated', 'folder', 'lfw', 'fer2013'\]$"),
    (lambda r: r["data"]["face"].update(max_bad_fractoin=0.1),
     r"^data.face: unknown key 'max_bad_fractoin'; did you mean 'max_bad_fraction'\?$"),
    (lambda r: r["data"]["face"].update(max_bad_fraction=1.5),
     r"^data.face.max_bad_fraction: 1.5 must be inside \[0, 1\) \(0: any unreadable file stops prepare\)$"),
    (lambda r: r["data"]["face"].update(max_bad_fraction="lots"),
     r"^data.face.max_bad_fraction: expected a number, got 'lots'$"),
    (lambda r: r["data"]["face"]["split"].update(val=0.0, train=0.85),
     r"^data.face.split.val: 0.0 must be inside \(0, 1\)$"),
    (lambda r: r["data"]["emotion"].update(img_size="64"), r"^data.emotion.img_size: expected an integer, got '64'$"),
    (lambda r: r["data"]["face"].update(source="lfw", lfw=None),
     r"^data.face.lfw: missing; source 'lfw' needs lfw: \{target: <Person_Name>, n_other: <count>\}$"),
    (lambda r: r["data"]["face"].update(source="lfw", lfw={"target": "A_B", "n_others": 5, "download": True}),
     r"^data.face.lfw: unknown key 'n_others'; did you mean 'n_other'\?$"),
    (lambda r: r["data"]["face"].update(source="lfw", lfw={"target": "A_B", "n_other": 0, "download": True}),
     r"^data.face.lfw.n_other: 0 must be > 0$"),
    (lambda r: r["data"]["face"].update(source="lfw", lfw={"target": "A_B", "n_other": 5, "download": "yes"}),
     r"^data.face.lfw.download: expected true or false, got 'yes'$"),
    (lambda r: r["data"]["face"].update(source="lfw", lfw={"target": "lfw/A_B", "n_other": 5, "download": True}),
     r"^data.face.lfw.target: 'lfw/A_B' is not an LFW folder name such as George_W_Bush$"),
    (lambda r: r["data"]["emotion"].update(source="lfw", lfw={"target": "A_B", "n_other": 5, "download": True}),
     r"^data.emotion.classes: source 'lfw' is a binary task \[others, target person\], "
     r"got \['angry', 'happy', 'sad'\]$"),
    (lambda r: r["data"]["emotion"].update(source="fer2013"),
     r"^data.emotion.path: source 'fer2013' needs a path to fer2013.csv or to the release folder "
     r"holding train/ and test/$"),
    (lambda r: r["data"]["emotion"].update(source="fer2013", path="f.csv", fer2013=None),
     r"^data.emotion.fer2013: missing; source 'fer2013' needs a class \(or null\) for each FER2013 label \['angry', "),
    (lambda r: r["data"]["emotion"]["fer2013"].update(anger="angry"),
     r"^data.emotion.fer2013: unknown key 'anger'; did you mean 'angry'\?$"),
    (lambda r: r["data"]["emotion"].update(source="fer2013", path="f.csv", fer2013={"angry": "angry", "fear": "scared",
                                                                                    "happy": "happy", "sad": "sad"}),
     r"^data.emotion.fer2013.fear: 'scared' is not one of \['angry', 'happy', 'sad'\]$"),
    (lambda r: r["data"]["emotion"].update(source="fer2013", path="f.csv", fer2013={"angry": "angry", "sad": "sad"}),
     r"^data.emotion.fer2013: no FER2013 label maps to class\(es\) \['happy'\]; set one of \['angry', "),
])
def test_bad_params_fail_with_the_key_named(tiny_raw, edit, message):
    edit(tiny_raw)
    with pytest.raises(ParamsError, match=message):
        parse_params(tiny_raw)


def test_params_pickle_as_a_spawned_worker_receives_them():
    import pickle
    params = load_params(ROOT / "params.yaml")
    assert type(params).__module__ == "facelab.params.schema"
    assert pickle.loads(pickle.dumps(params)) == params


def test_public_sources_parse_to_typed_params(tiny_raw):
    tiny_raw["data"]["face"].update(source="lfw", path="~/sk",
                                    lfw={"target": "George_W_Bush", "n_other": 40, "download": True})
    tiny_raw["data"]["emotion"].update(source="fer2013", path="fer.csv",
                                       fer2013={"angry": "angry", "fear": "sad", "happy": "happy", "sad": "sad"})
    data = parse_params(tiny_raw).data
    lfw, fer2013 = data["face"].lfw, data["emotion"].fer2013
    assert lfw is not None and fer2013 is not None
    assert (lfw.target, lfw.n_other, lfw.download) == ("George_W_Bush", 40, True)
    assert fer2013.fear == "sad" and fer2013.disgust is None
    assert data["face"].max_bad_fraction == 0.05


def test_fer2013_params_name_every_fer2013_label_in_the_csv_order():
    import dataclasses

    from facelab.params import FER2013_LABELS, Fer2013
    assert tuple(f.name for f in dataclasses.fields(Fer2013)) == FER2013_LABELS


@pytest.mark.parametrize("text, message", [
    ("data_seed: 1\ndata_seed: 2\n", r"params.yaml: key 'data_seed' is given twice, at line 1 and line 2; keep one$"),
    ("data_seed: 1\ndata: [1, 2\n", r"params.yaml: YAML syntax error at line 3, column 1: expected ',' or ']', but got "
                               r"'<stream end>' \(while parsing a flow sequence at line 2\); fix line 2$"),
    ("a:\n  b: 1\n c: 2\n", r"params.yaml: YAML syntax error at line 3, column 2: .*; fix that line$"),
])
def test_yaml_mistakes_name_the_file_and_line(tmp_path, text, message):
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ParamsError, match=message):
        load_params(tmp_path / "params.yaml")


@pytest.mark.parametrize("read", [load_params, raw_params])
def test_a_params_file_that_is_not_a_mapping_or_is_missing_is_refused_by_both_readers(tmp_path, read):
    with pytest.raises(ParamsError, match=r"params.yaml: expected a mapping of seeds, data_seed, data, models, train "
                                          r"and wandb, got \[1, 2\]$"):
        read(write(tmp_path, "[1, 2]\n"))
    with pytest.raises(ParamsError, match=r"nowhere.yaml: file not found; run from the repository root or pass "
                                          r"--params$"):
        read(tmp_path / "nowhere.yaml")


def test_raw_params_are_plain_and_parse_as_load_params_reads_the_file():
    raw = raw_params(ROOT / "params.yaml")
    raw["models"]["resnet18_scratch"]["epochs"] = 3  # a benchmark's change in memory, the file untouched
    assert parse_params(raw).models["resnet18_scratch"].epochs == 3
    assert load_params(ROOT / "params.yaml").models["resnet18_scratch"] == \
        parse_params(raw_params(ROOT / "params.yaml")).models["resnet18_scratch"]


@pytest.mark.e2e  # starts a stage process
def test_a_yaml_mistake_is_one_error_line_when_a_stage_runs_directly(tmp_path):
    import subprocess
    import sys
    (tmp_path / "params.yaml").write_text("data_seed: 1\ndata_seed: 2\n")
    result = subprocess.run([sys.executable, "-m", "stages.prepare", "--task", "face"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr == "error: params.yaml: key 'data_seed' is given twice, at line 1 and line 2; keep one\n"


def test_a_key_missing_from_params_is_an_error_naming_it(tmp_path):
    text = (ROOT / "params.yaml").read_text()
    lines = [line for line in text.splitlines() if not line.strip().startswith("select_by:")]
    with pytest.raises(ParamsError, match=r"^train: missing key\(s\) \['select_by'\]; add them to params.yaml \(every "
                                          r"key is required: params.yaml holds every default\)$"):
        load_params(write(tmp_path, "\n".join(lines) + "\n"))


@pytest.mark.parametrize("line, check", [
    ("    lr: 1e-3", lambda p: p.models["resnet18_scratch"].lr == 0.001),  # YAML 1.2, as DVC reads it
    ("    classes: [no, yes]", None),  # 'no' and 'yes' are strings in YAML 1.2
])
def test_params_are_read_as_dvc_reads_them(tmp_path, line, check):
    text = (ROOT / "params.yaml").read_text()
    if "lr" in line:
        text = text.replace("    lr: 0.001\n", line + "\n", 1)
        assert check(load_params(write(tmp_path, text)))
    else:
        text = text.replace("    source: generated", "    source: folder", 1).replace(
            "    path: null", "    path: /p", 1)
        text = text.replace("    classes: [other, target]", line, 1)
        assert load_params(write(tmp_path, text)).data["face"].classes == ("no", "yes")


def test_a_boolean_class_name_says_to_quote_it_and_names_the_line(tmp_path):
    text = (ROOT / "params.yaml").read_text().replace("    classes: [other, target]", "    classes: [false, true]", 1)
    line = 1 + next(i for i, row in enumerate(text.splitlines()) if row.startswith("    classes: [false, true]"))
    with pytest.raises(ParamsError, match=rf"^data.face.classes\[0\]: expected a string, got False; quote it: "
                                          rf"'false' \(params.yaml line {line}\)$"):
        load_params(write(tmp_path, text))


def test_class_names_equal_after_unicode_normalisation_are_one_name(tiny_raw):
    import unicodedata
    tiny_raw["data"]["face"].update(source="folder", path="/p",
                                    classes=["café", unicodedata.normalize("NFD", "café")])
    with pytest.raises(ParamsError, match="need at least 2 distinct class names"):
        parse_params(tiny_raw)


def write(folder, text: str):
    (folder / "params.yaml").write_text(text)
    return folder / "params.yaml"
