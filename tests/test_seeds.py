import json
import statistics

import pytest

from facelab import app
from facelab.commands.seeds import distinct_runs, markdown, runs_of, summarise


def rev(name, seed, acc, f1, lr=0.001, status="Success", collapsed=False):
    params = {"seed": seed, "models": {"resnet18_scratch": {"lr": lr}}, "train": {"select_by": "val_macro_f1"}}
    test = {"acc": acc, "acc_ci": [acc - 0.1, acc + 0.1], "macro_f1": f1, "loss": 1.0}
    return {"rev": f"{name:0<40}", "name": name,
            "data": {"status": status, "params": {"params.yaml": {"data": params}},
                     "metrics": {"metrics/face/resnet18_scratch.json": {"data": {"test": test, "collapsed": collapsed}},
                                 "metrics/face/data.json": {"data": {"images": 10}}}}}


def exp_show():
    """The shape `dvc exp show --json` prints (dvc 3): rows per commit, experiments under their baseline."""
    baseline = rev("main", 42, 0.80, 0.70)
    baseline["experiments"] = [{"name": name, "revs": [rev(name, *rest)]} for name, *rest in (
        ("seed-1", 1, 0.70, 0.60), ("seed-2", 2, 0.90, 0.65, 0.001, "Success", True),
        ("lr-seed-1", 1, 0.50, 0.40, 0.01))]
    baseline["experiments"].append({"name": "queued", "revs": [rev("queued", 3, 0.0, 0.0, status="Queued")]})
    return [{"rev": "workspace", "name": None, "data": rev("ws", 42, 0.0, 0.0)["data"]}, baseline]


def test_runs_are_grouped_by_their_params_without_the_seed():
    rows = summarise(runs_of(exp_show()))
    assert [(row["config"], row["experiment"], row["seeds"]) for row in rows] == [
        ("baseline params", "face/resnet18_scratch", [42, 1, 2]),
        ("models.resnet18_scratch.lr=0.01", "face/resnet18_scratch", [1])]
    three = rows[0]
    assert three["acc"] == pytest.approx((0.8, statistics.stdev([0.8, 0.7, 0.9])))
    assert three["macro_f1"] == pytest.approx((0.65, statistics.stdev([0.7, 0.6, 0.65])))
    assert three["collapsed"] == 1 and three["runs"] == ["main", "seed-1", "seed-2"]


def test_wandb_settings_do_not_make_another_configuration():
    shown = exp_show()
    shown[1]["experiments"][0]["revs"][0]["data"]["params"]["params.yaml"]["data"]["wandb"] = {"mode": "offline"}
    rows = summarise(runs_of(shown))
    assert [(row["config"], row["seeds"]) for row in rows] == [("baseline params", [42, 1, 2]),
                                                               ("models.resnet18_scratch.lr=0.01", [1])]


def test_the_table_gives_mean_and_std_and_says_when_there_is_no_spread():
    lines = markdown(summarise(runs_of(exp_show())))
    assert "| baseline params | face/resnet18_scratch | 3 | 42, 1, 2 | 0.800 ± 0.100 | 0.650 ± 0.050 | 1 of 3 |" in lines
    assert any("0.500 (one run: no spread)" in line for line in lines)
    assert "queue some with" in markdown([])[0]


def test_facelab_seeds_reads_a_saved_exp_show(tmp_path, capsys):
    saved = tmp_path / "shown.json"
    saved.write_text(json.dumps(exp_show()))
    app.main(["seeds", "--json", str(saved)])
    assert "| 0.800 ± 0.100 |" in capsys.readouterr().out
    saved.write_text("{not json")
    with pytest.raises(SystemExit) as stop:
        app.main(["seeds", "--json", str(saved)])
    assert stop.value.code == 1
    assert "not a readable `dvc exp show --json` output" in capsys.readouterr().err


def test_an_experiment_is_counted_once_and_a_repeated_seed_with_the_same_params_warns(tmp_path, capsys):
    shown = exp_show()
    baseline = shown[1]
    baseline["experiments"][0]["revs"].append(rev("seed-1", 1, 0.70, 0.60))  # one experiment under two revisions
    baseline["experiments"].append({"name": "prepare-only", "revs": [rev("prepare-only", 42, 0.80, 0.70)]})
    runs, warnings = distinct_runs(runs_of(shown))
    assert [run["name"] for run in runs] == ["main", "seed-1", "seed-2", "lr-seed-1"]
    assert warnings == ["runs main and prepare-only have the same seed (42) and params; counted once, as main "
                        "(queue other seeds with `dvc exp run --queue -S seed=...`)"]
    saved = tmp_path / "shown.json"
    saved.write_text(json.dumps(shown))
    app.main(["seeds", "--json", str(saved)])
    out, err = capsys.readouterr()
    assert "| baseline params | face/resnet18_scratch | 3 | 42, 1, 2 |" in out
    assert err == f"warning: {warnings[0]}\n"


@pytest.mark.e2e  # starts a Python process
def test_python_m_facelab_app_runs_the_command(tmp_path):
    import subprocess
    import sys
    saved = tmp_path / "shown.json"
    saved.write_text(json.dumps(exp_show()))
    done = subprocess.run([sys.executable, "-m", "facelab.app", "seeds", "--json", str(saved)], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert "| baseline params | face/resnet18_scratch | 3 | 42, 1, 2 |" in done.stdout
