"""How our commands import torch: with the cycle collector paused, and its Python meta kernels waiting until
something needs them (docs/performance.md, "Start-up"). Each check of an import runs in a fresh process, as a
user's command starts."""

import json
import subprocess
import sys
import textwrap

import pytest

from mnist_tiny.process_imports import META_KERNELS, _Deferred

DEFERRED_IMPORT = ("import sys\nfrom mnist_tiny.process_imports import importing_torch\n"
                   "with importing_torch():\n    import torch\n")

# What a meta tensor needs from the Python kernels (convolution has no C++ meta kernel), and what they register.
META_WORKS = ("x = torch.empty(2, 1, 28, 28, device='meta')\n"
              "shape = list(torch.nn.functional.conv2d(x, torch.empty(4, 1, 3, 3, device='meta')).shape)\n"
              "import torch._decomp\n"
              "print(json.dumps({'shape': shape, 'decompositions': len(torch._decomp.decomposition_table)}))\n")


# Eager work that depends on what is held back: torch.Generator's metaclass is set by torch._prims.rng_prims.
EAGER = ("eager = [type(torch._C.Generator).__name__,"
         " torch.rand(3, generator=torch.Generator().manual_seed(0)).tolist(),"
         " torch.nn.functional.conv2d(torch.ones(1, 1, 5, 5), torch.ones(2, 1, 3, 3)).sum().item()]\n")


def python(code: str, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)


def last_json(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def plain_torch() -> dict:
    """What a plain `import torch` gives: its modules, and the meta kernels at work."""
    report = META_WORKS.replace("print(json.dumps({", "print(json.dumps({'modules': modules, 'eager': eager, ")
    return last_json(python("import json, sys\nimport torch\nmodules = sorted(sys.modules)\n" + EAGER + report))


def test_a_command_imports_torch_with_the_collector_paused_and_without_the_meta_kernels(mnist):
    # Importing torch makes ~190k long-lived objects; left running, the collector walks them ~400 times (~0.1-0.2 s
    # of every command's start-up, docs/performance.md). The meta kernels are not needed to evaluate a model.
    probe = python("import gc, sys\nfrom mnist_tiny.cli.app import app\n"
                   "assert 'torch' not in sys.modules\n"
                   "before = sum(s['collections'] for s in gc.get_stats())\n"
                   "try:\n    app(['eval', '--model', 'tiny-2k', '--json'])\n"
                   "except SystemExit as e:\n    assert not e.code, e.code\n"
                   "after = sum(s['collections'] for s in gc.get_stats())\n"
                   f"print('torch' in sys.modules, gc.isenabled(), after - before, {META_KERNELS!r} in sys.modules,"
                   " file=sys.stderr)")
    assert probe.returncode == 0, probe.stderr[-3000:]
    loaded, enabled, collections, meta_kernels = probe.stderr.strip().splitlines()[-1].split()
    assert loaded == "True" and enabled == "True", probe.stderr[-2000:]
    assert int(collections) < 150, collections  # 48 here; 428 with the collector running through the import
    assert meta_kernels == "False"
    assert json.loads(probe.stdout)["accuracy"] > 0.5


def test_the_pause_restores_what_it_found():
    import gc

    from mnist_tiny.process_imports import collector_paused

    assert gc.isenabled()
    with pytest.raises(ImportError):
        with collector_paused():
            assert not gc.isenabled()
            import mnist_tiny_no_such_module  # noqa: F401
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # a process that runs without it keeps running without it
    finally:
        gc.enable()


def test_what_is_held_back_is_exactly_what_the_deferral_lists(plain_torch):
    # A torch that brings these modules in some other way (an upgrade) fails here, not in a user's run.
    got = last_json(python("import json\n" + DEFERRED_IMPORT + "modules = sorted(sys.modules)\n" + EAGER +
                           "print(json.dumps({'modules': modules, 'eager': eager}))"))
    assert got["eager"] == plain_torch["eager"]
    ours = got["modules"]
    held_back = set(plain_torch["modules"]) - set(ours)
    roots = {name for name in held_back if name.rpartition(".")[0] not in held_back}
    assert roots == {META_KERNELS, *_Deferred.ONLY_IT_BRINGS}
    assert set(ours) - set(plain_torch["modules"]) <= {"mnist_tiny", "mnist_tiny.process_imports"}


EXPORT = ("torch.export.export(torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4)).eval(),"
          " (torch.zeros(1, 1, 28, 28),))")


@pytest.mark.parametrize("first", [*(f"importlib.import_module({name!r})" for name in
                                     (META_KERNELS, *_Deferred.ONLY_IT_BRINGS, "torch._dynamo")), EXPORT])
def test_whatever_comes_first_the_meta_kernels_come_whole(first, plain_torch):
    # These modules import each other in cycles that work only when the meta kernels enter first (as in a plain
    # import); entering at any of them afterwards, or exporting a model, must give the same torch.
    got = last_json(python("import json, importlib\n" + DEFERRED_IMPORT +
                           f"assert {META_KERNELS!r} not in sys.modules and not hasattr(torch, '_meta_registrations')\n"
                           f"{first}\n" + META_WORKS))
    assert got == {"shape": plain_torch["shape"], "decompositions": plain_torch["decompositions"]}


def test_a_users_model_that_sizes_itself_on_the_meta_device_trains(tmp_path, mnist):
    # Code the user names may use meta tensors without importing anything that loads their kernels.
    (tmp_path / "net.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                layers = lambda: [nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2)]
                self.features = nn.Sequential(*layers())
                with torch.device("meta"):  # the head's width, from a copy that computes shapes only
                    width = nn.Sequential(*layers())(torch.zeros(1, 1, 28, 28)).flatten(1).shape[1]
                self.head = nn.Linear(width, 10)

            def forward(self, x):
                return self.head(self.features(x).flatten(1))
        """))
    probe = python("import sys\nfrom mnist_tiny.cli.app import app\n"
                   f"try:\n    app(['train', '--model', {str(tmp_path / 'net.py') + ':Net'!r}, '--epochs', '1',"
                   f" '--subset', '256', '--out', {str(tmp_path / 'run')!r}, '--json'])\n"
                   "except SystemExit as e:\n    assert not e.code, e.code\n", timeout=300)
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert (tmp_path / "run" / "summary.json").is_file()
