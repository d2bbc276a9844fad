"""A user's own model (`--model file.py:Attr`, `module:Attr`, a plugin) through every command.

The files under students/ are written the way course students write them: log-softmax output, F.dropout in
forward, an nn.Sequential from a factory, a residual network with squeeze-excitation, a partial average pool.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import mnist_tiny
from mnist_tiny.training.checkpoint import load_checkpoint, read_checkpoint
from mnist_tiny.cli.app import app
from mnist_tiny.errors import UserError

STUDENTS = Path(__file__).parent / "students"
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def student_runs(tmp_path_factory, mnist):
    """One real epoch on 5,000 images for the classic course model and the residual SE one."""
    runs = {}
    for ref in ("logsoftmax_net.py:Net", "residual_se.py:ResSE"):
        out = tmp_path_factory.mktemp("student") / "run"
        result = invoke("train", "--model", STUDENTS / ref, "--epochs", 1, "--subset", 5000, "--seed", 1,
                        "--out", out, "--json")
        assert result.exit_code == 0, result.output
        runs[ref] = (out, json.loads(result.stdout))
    return runs


def test_a_student_model_trains_to_a_real_accuracy_in_one_epoch(student_runs):
    for ref, (out, summary) in student_runs.items():
        assert summary["best_test_acc"] >= 0.85, (ref, summary["best_test_acc"])
        raw = read_checkpoint(out / "best.pt")
        assert raw["model"] == str(STUDENTS / ref)
        assert raw["source"]["sha256"] and raw["source"]["text"].startswith(("#", "import", '"""'))
        assert raw["input_scaling"] == "mnist"
        # the state dict is the student's own: the keys `Net().state_dict()` has
        assert set(raw["state_dict"]) == set(mnist_tiny.get_model(str(STUDENTS / ref)).state_dict())


def test_eval_and_predict_need_the_model_named_and_then_agree_with_training(student_runs, tmp_path, mnist):
    out, summary = student_runs["logsoftmax_net.py:Net"]
    ref = STUDENTS / "logsoftmax_net.py:Net"
    refused = invoke("eval", "--checkpoint", out / "best.pt")
    assert refused.exit_code == 2 and "--model" in refused.output and "Traceback" not in refused.output
    scored = invoke("eval", "--checkpoint", out / "best.pt", "--model", ref, "--json")
    assert scored.exit_code == 0, scored.output
    data = json.loads(scored.stdout)
    assert data["accuracy"] == pytest.approx(summary["best_test_acc"])
    assert data["params"] == 8_056
    from PIL import Image

    images, labels = mnist["test"].images[:40].numpy(), mnist["test"].labels[:40].tolist()
    for i, image in enumerate(images):
        Image.fromarray(255 - image).save(tmp_path / f"{i:02d}.png")  # dark ink on white paper, as people write
    predicted = invoke("predict", tmp_path, "--checkpoint", out / "best.pt", "--model", ref, "--json")
    assert predicted.exit_code == 0, predicted.output
    digits = [row["digit"] for row in json.loads(predicted.stdout)]
    assert sum(d == label for d, label in zip(digits, labels)) >= 0.8 * len(labels)


def test_a_checkpoint_never_imports_the_model_file_by_itself(tmp_path, mnist):
    marker = tmp_path / "imported"
    model_file = tmp_path / "marked.py"
    model_file.write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('imported')\n"
        + (STUDENTS / "sequential_factory.py").read_text())
    # build and save without CLI: the file runs once here, by name
    model = mnist_tiny.get_model(f"{model_file}:build")
    marker.unlink()
    saved = tmp_path / "weights.pt"
    torch.save(model.state_dict(), saved)
    for args in (["eval", "--checkpoint", saved], ["params", "--checkpoint", saved],
                 ["predict", STUDENTS, "--checkpoint", saved]):
        result = invoke(*args)
        assert result.exit_code == 2 and "--model" in result.output, result.output
    # and in a fresh process, as the installed command
    result = subprocess.run([shutil.which("mnist-tiny") or "mnist-tiny", "params", "--checkpoint", str(saved)],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "--model" in result.stderr
    assert not marker.exists()


def test_a_state_dict_saved_by_the_students_own_script_is_accepted_with_model(tmp_path, mnist):
    ref = f"{STUDENTS / 'logsoftmax_net.py'}:Net"
    model = mnist_tiny.get_model(ref)
    torch.save({"epoch": 3, "model_state_dict": model.state_dict()}, tmp_path / "mine.pt")
    torch.save(model.state_dict(), tmp_path / "bare.pt")
    for name in ("mine.pt", "bare.pt"):
        loaded = load_checkpoint(tmp_path / name, ref)
        assert loaded.input_scaling == "mnist"
        for key, value in model.state_dict().items():
            assert torch.equal(loaded.model.state_dict()[key], value)
        result = invoke("eval", "--checkpoint", tmp_path / name, "--model", ref, "--json")
        assert result.exit_code == 0, result.output
    wrong = invoke("eval", "--checkpoint", tmp_path / "bare.pt", "--model", STUDENTS / "partial_pool.py")
    assert wrong.exit_code == 1 and "do not fit" in wrong.output


def test_a_changed_model_file_is_named_when_its_checkpoint_loads(tmp_path, student_runs):
    out, _ = student_runs["logsoftmax_net.py:Net"]
    copy = tmp_path / "logsoftmax_net.py"
    copy.write_text((STUDENTS / "logsoftmax_net.py").read_text() + "\n# edited\n")
    warnings = []
    loaded = load_checkpoint(out / "best.pt", f"{copy}:Net", warn=warnings.append)
    assert loaded.model is not None and len(warnings) == 1 and "has changed" in warnings[0]
    same = []
    load_checkpoint(out / "best.pt", str(STUDENTS / "logsoftmax_net.py:Net"), warn=same.append)
    assert same == []


@pytest.mark.parametrize("ref, rules", [
    ("logsoftmax_net.py:Net", {"bn": True, "dropout": True, "gap": True, "fc": True}),
    ("functional_dropout.py", {"bn": True, "dropout": True, "gap": True, "fc": True}),
    ("sequential_factory.py:build", {"bn": True, "dropout": True, "gap": True, "fc": True}),
    ("residual_se.py:ResSE", {"bn": True, "dropout": True, "gap": False, "fc": True}),
    ("partial_pool.py", {"bn": True, "dropout": False, "gap": False, "fc": True}),
])
def test_params_judges_what_each_student_model_computes(ref, rules):
    result = invoke("params", "--model", STUDENTS / ref, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {k: v["ok"] for k, v in data["rules"].items()} == rules
    model = mnist_tiny.get_model(str(STUDENTS / ref))
    assert data["params"]["total"] == sum(p.numel() for p in model.parameters())
    assert data["receptive_field"] > 1


def test_the_evidence_says_why_a_rule_fails():
    partial = json.loads(invoke("params", "--model", STUDENTS / "partial_pool.py", "--json").stdout)["rules"]
    assert "covers 9 of 25 positions" in partial["gap"]["evidence"]
    assert "p=0" in partial["dropout"]["evidence"]
    se = json.loads(invoke("params", "--model", STUDENTS / "residual_se.py:ResSE", "--json").stdout)["rules"]
    assert "does not feed the output" in se["gap"]["evidence"]
    table = invoke("params", "--model", STUDENTS / "partial_pool.py", "--require", "gap,dropout")
    assert table.exit_code == 1
    assert "✗ gap" in table.output and "covers 9 of 25 positions" in table.output


def test_a_functional_model_gets_its_receptive_field_from_the_functions_it_calls():
    data = json.loads(invoke("params", "--model", STUDENTS / "functional_dropout.py", "--json").stdout)
    # conv 3 (3) → max-pool 2 (4, jump 2) → conv 3 (8) → max-pool 2 (10, jump 4) → conv 3 (18)
    assert data["receptive_field"] == 18


def test_lean_6k_and_a_partial_pool_no_longer_pass_dropout_and_gap():
    lean = invoke("params", "--model", "lean-6k", "--require", "dropout")
    assert lean.exit_code == 1 and "p=0" in lean.output
    compact = invoke("params", "--model", "s6-compact", "--require", "gap")
    assert compact.exit_code == 1 and "9 of 25" in compact.output
    assert invoke("params", "--model", "s6-attention", "--require", "bn,dropout,gap,fc").exit_code == 0


def test_parameters_are_counted_three_ways():
    data = json.loads(invoke("params", "--model", "s6-compact", "--json").stdout)
    assert data["params"]["total"] == data["params"]["trainable"] == 6_926
    bn_stats = sum(2 * m.num_features for m in mnist_tiny.get_model("s6-compact").modules()
                   if isinstance(m, torch.nn.BatchNorm2d))
    assert data["params"]["with_bn_stats"] == 6_926 + bn_stats
    over = invoke("params", "--model", "s6-compact", "--max-params", 7_000, "--count", "with_bn_stats")
    assert over.exit_code == 1 and "BatchNorm statistics" in over.output
    assert invoke("params", "--model", "s6-compact", "--max-params", 7_000).exit_code == 0


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("source, attr, expected", [
    ("import torch\nfrom torch import nn\nclass Net(nn.Module)\n    pass\n", "Net", ":3: syntax error"),
    ("import not_a_real_module_xyz\n", "Net", ":1: No module named 'not_a_real_module_xyz'"),
    ("from torch import nn\nclass Net(nn.Module):\n    pass\n", "Nett", "did you mean 'Net'"),
    ("from torch import nn\nclass Net(nn.Module):\n    def __init__(self, width):\n        super().__init__()\n",
     "Net", "needs arguments (width)"),
    ("from torch import nn\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
     "        self.fc = nn.Linear(784, 12)\n    def forward(self, x):\n        return self.fc(x.flatten(1))\n",
     "Net", "returns shape (2, 12)"),
    ("from torch import nn\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
     "        self.c = nn.Conv2d(3, 10, 28)\n    def forward(self, x):\n        return self.c(x).flatten(1)\n",
     "Net", "channels"),
    ("from torch import nn\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
     "        self.fc = nn.Linear(32 * 32, 10)\n    def forward(self, x):\n        return self.fc(x.flatten(1))\n",
     "Net", "another size"),
    ("import torch\nfrom torch import nn\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
     "        self.fc = nn.Linear(784, 10)\n        self.fc.weight.data[0, 0] = float('nan')\n"
     "    def forward(self, x):\n        return self.fc(x.flatten(1))\n", "Net", "not finite"),
    ("import torch\nfrom torch import nn\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
     "        self.fc = nn.Linear(784, 10)\n    def forward(self, x):\n        return self.fc(x.flatten(1)).softmax(1)\n",
     "Net", "probabilities"),
    ("x = 1 / 0\n", "Net", ":1: running the file failed: ZeroDivisionError"),
    ("from torch import nn\nclass A(nn.Module):\n    pass\nclass B(nn.Module):\n    pass\n", "", "several models (A, B)"),
])
def test_every_mistake_in_a_model_file_is_one_line(tmp_path, source, attr, expected):
    path = write(tmp_path, f"broken_{abs(hash(source)) % 10**8}.py", source)
    ref = f"{path}:{attr}" if attr else str(path)
    result = invoke("params", "--model", ref)
    assert result.exit_code == 2, result.output
    assert expected in result.output, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 3


def test_module_references_and_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(STUDENTS / "logsoftmax_net.py", tmp_path / "mynet.py")
    shutil.copy(STUDENTS / "sequential_factory.py", tmp_path / "seq.py")
    for ref in ("mynet:Net", "mynet.py:Net", "./mynet.py", "mynet", "seq:build"):
        result = invoke("params", "--model", ref, "--json")
        assert result.exit_code == 0, (ref, result.output)
        assert json.loads(result.stdout)["params"]["total"] in (8_056, 3_818)
    no_class = invoke("params", "--model", "./seq.py")
    assert no_class.exit_code == 2 and "seq.py:build" in no_class.output
    elsewhere = tmp_path / "site"
    elsewhere.mkdir()
    shutil.copy(STUDENTS / "sequential_factory.py", elsewhere / "installed_nets.py")
    monkeypatch.syspath_prepend(str(elsewhere))
    imported = invoke("params", "--model", "installed_nets:build", "--json")
    assert imported.exit_code == 0 and json.loads(imported.stdout)["params"]["total"] == 3_818
    not_a_model = invoke("params", "--model", "torch.nn:Identity")
    assert not_a_model.exit_code == 2 and "returns shape (2, 1, 28, 28)" in not_a_model.output
    missing = invoke("params", "--model", "no_such_module_here:Net")
    assert missing.exit_code == 2 and "no module named" in missing.output


def test_the_models_own_recipe_and_a_borrowed_one():
    ref = str(STUDENTS / "residual_se.py:ResSE")
    own = mnist_tiny.resolve_settings({"model": ref}, environ={})
    assert (own.epochs, own.lr) == (3, 0.05)
    borrowed = mnist_tiny.resolve_settings({"model": ref, "recipe": "fast-11k"}, environ={})
    fast = mnist_tiny.resolve_settings({"model": "fast-11k"}, environ={})
    assert (borrowed.epochs, borrowed.batch_size, borrowed.lr) == (fast.epochs, fast.batch_size, fast.lr)
    flag_wins = mnist_tiny.resolve_settings({"model": ref, "recipe": "fast-11k", "epochs": 2}, environ={})
    assert flag_wins.epochs == 2


def test_input_scaling_is_the_classic_normalisation_unless_the_model_says_otherwise(tmp_path):
    ref = f"{STUDENTS / 'sequential_factory.py'}:build"
    classic, unit = mnist_tiny.get_model(ref).eval(), mnist_tiny.get_model(ref).eval()
    unit.load_state_dict(classic.state_dict())
    x = torch.rand(3, 1, 28, 28)
    from mnist_tiny.models.refs import build, resolve

    plain = build(resolve(ref), "unit").eval()
    plain.load_state_dict(classic.state_dict())
    with torch.no_grad():
        assert torch.allclose(classic(x), plain((x - 0.1307) / 0.3081), atol=1e-5)
    with pytest.raises(UserError, match="normalises its input itself"):
        build(resolve("fast-11k"), "mnist")


def test_a_plugin_package_registers_models_through_an_entry_point(tmp_path):
    site = tmp_path / "site"
    (site / "plugin_nets").mkdir(parents=True)
    shutil.copy(STUDENTS / "sequential_factory.py", site / "plugin_nets" / "__init__.py")
    info = site / "plugin_nets-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: plugin-nets\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[mnist_tiny.models]\nplugin-seq = plugin_nets:build\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    exe = shutil.which("mnist-tiny") or "mnist-tiny"
    listed = subprocess.run([exe, "models", "--json"], capture_output=True, text=True, env=env)
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["plugin-seq"]["kind"] == "plugin" and "plugin_nets:build" in rows["plugin-seq"]["description"]
    summary = subprocess.run([exe, "params", "--model", "plugin-seq", "--json"], capture_output=True, text=True,
                             env=env)
    assert summary.returncode == 0, summary.stderr
    assert json.loads(summary.stdout)["params"]["total"] == 3_818


def test_check_is_the_course_ci_test_in_one_command(student_runs):
    out, _ = student_runs["logsoftmax_net.py:Net"]
    ref = STUDENTS / "logsoftmax_net.py:Net"
    rules_only = invoke("check", "--model", ref, "--json")
    assert rules_only.exit_code == 0, rules_only.output
    data = json.loads(rules_only.stdout)
    assert data["passed"] and not data["accuracy_checked"]
    with_acc = invoke("check", "--model", ref, "--checkpoint", out / "best.pt", "--min-acc", 85, "--json")
    assert with_acc.exit_code == 0, with_acc.output
    accuracy = [c for c in json.loads(with_acc.stdout)["checks"] if c["name"] == "accuracy"][0]
    assert accuracy["ok"] and accuracy["value"] >= 85
    too_high = invoke("check", "--model", ref, "--checkpoint", out / "best.pt", "--max-epochs", 1)
    assert too_high.exit_code == 1 and "✗ accuracy" in too_high.output and "99.4%" in too_high.output
    small = invoke("check", "--model", ref, "--max-params", 8_000)
    assert small.exit_code == 1 and "8,056" in small.output
    partial = invoke("check", "--model", STUDENTS / "partial_pool.py")
    assert partial.exit_code == 1 and "✗ gap" in partial.output and "✗ dropout" in partial.output


def test_new_writes_a_course_project_whose_model_passes_and_whose_tests_run(tmp_path):
    project = tmp_path / "course"
    result = invoke("new", project)
    assert result.exit_code == 0, result.output
    for name in ("model.py", "test_model.py", "README.md", "requirements.txt", ".github/workflows/mnist.yml"):
        assert (project / name).is_file(), name
    assert invoke("new", project).exit_code == 2  # never writes into a project that exists
    checked = subprocess.run([shutil.which("mnist-tiny") or "mnist-tiny", "check", "--model", "model.py:Net",
                              "--max-params", "8000", "--json"], cwd=project, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project,
                           capture_output=True, text=True)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "2 passed" in tests.stdout


def test_the_starters_requirements_install_in_a_new_venv(tmp_path):
    """`new`'s requirements.txt names mnist-tiny where this copy came from (a clone, a wheel, a git URL), with
    `[train]` and pytest only: a new venv resolves all of it (dry run: torch is not installed twice) and installs
    mnist-tiny itself from that origin."""
    project = tmp_path / "course"
    assert invoke("new", project).exit_code == 0
    lines = [ln for ln in (project / "requirements.txt").read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines[0].startswith("mnist-tiny[train]") and lines[1].startswith("pytest"), lines
    assert "test]" not in lines[0] and len(lines) == 2
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python")]
    resolved = subprocess.run([*pip, "install", "--dry-run", "-q", "--report", str(tmp_path / "plan.json"), "-r",
                               str(project / "requirements.txt")], capture_output=True, text=True, timeout=600)
    assert resolved.returncode == 0, resolved.stderr[-2000:]
    plan = {item["metadata"]["name"].lower() for item in json.loads((tmp_path / "plan.json").read_text())["install"]}
    assert {"mnist-tiny", "torch", "torchvision", "matplotlib", "pytest"} <= plan, plan
    assert "selenium" not in plan and "hypothesis" not in plan  # the test extras stay out of a course
    installed = subprocess.run([*pip, "install", "-q", "--no-deps", "-r", str(project / "requirements.txt")],
                               capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-2000:]
    version = subprocess.run([str(venv / "bin" / "python"), "-c",
                              "import importlib.metadata as m; print(m.version('mnist-tiny'))"],
                             capture_output=True, text=True, cwd=tmp_path)
    assert version.stdout.strip() == mnist_tiny.__version__


def test_a_users_model_without_a_recipe_trains_one_process_per_core(tmp_path, mnist):
    """The default batch of 64 splits into shards of 32: one process per core, as our models get."""
    from mnist_tiny.parallel.policy import usable_cores

    result = invoke("train", "--model", f"{STUDENTS / 'sequential_factory.py'}:build", "--epochs", 1, "--subset", 1000,
                    "--val-size", 500, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    cores = min(usable_cores(), 2)
    assert "batch_size=64" in result.output
    assert (f"x {cores} processes" if cores > 1 else "x 1 process") in result.output, result.output
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["processes"] == cores


def test_a_users_model_trains_on_our_kernels_unless_told_not_to(tmp_path, mnist):
    """Its nn.Dropout draws our cheaper masks by default (the same distribution, other draws), torch's own with
    `--set fast_kernels=false`: the same seed then trains to other figures, and each way repeats itself."""
    losses = {}
    for name, extra in (("ours", []), ("torch", ["--set", "fast_kernels=false"]), ("ours-again", [])):
        result = invoke("train", "--model", STUDENTS / "logsoftmax_net.py:Net", "--epochs", 1, "--subset", 300,
                        "--val-size", 100, "--set", "processes=1", "--set", "test=false", "--out", tmp_path / name,
                        "--json", *extra)
        assert result.exit_code == 0, result.output
        losses[name] = json.loads(result.stdout)["history"][0]["train_loss"]
    assert losses["ours"] == losses["ours-again"] != losses["torch"]


def test_a_run_recorded_before_the_kernels_setting_resumes_on_the_layers_it_trained_on(tmp_path, mnist):
    """A checkpoint without `fast_kernels` (written before the setting): a user's model had trained on torch's own
    layers, ours on the kernels; a resume continues on the same ones."""
    from mnist_tiny.cli.app import _resume_settings
    from mnist_tiny.settings import Settings
    from mnist_tiny.training.checkpoint import read_checkpoint, save_atomic

    ref = f"{STUDENTS / 'logsoftmax_net.py'}:Net"
    for model, flags in ((ref, {"model": ref}), ("tiny-600", {})):
        out = tmp_path / model.replace("/", "_")
        result = invoke("train", "--model", model, "--epochs", 1, "--subset", 300, "--val-size", 100,
                        "--set", "test=false", "--out", out)
        assert result.exit_code == 0, result.output
        state = read_checkpoint(out / "last.pt")
        del state["settings"]["fast_kernels"]
        save_atomic(state, out / "old.pt")
        resumed = _resume_settings(out / "old.pt", Settings(**flags), flags)
        assert resumed.fast_kernels is (model == "tiny-600")
        assert _resume_settings(out / "last.pt", Settings(**flags), flags).fast_kernels  # recorded: as recorded
