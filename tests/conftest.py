import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))

# Real MNIST beside the repository (CI sets MNIST_TINY_DATA_DIR=../shared/data); never downloaded by tests.
DATA_DIR = Path(os.environ.get("MNIST_TINY_DATA_DIR", REPO.parent / "shared" / "data")).resolve()
os.environ["MNIST_TINY_DATA_DIR"] = str(DATA_DIR)
os.environ["MNIST_TINY_DOWNLOAD"] = "false"


@pytest.fixture(scope="session")
def mnist():
    """The real dataset. Missing data is a failure, not a skip: the tests that need it must run."""
    from mnist_tiny.data.mnist import load_mnist

    if not (DATA_DIR / "MNIST" / "raw" / "t10k-images-idx3-ubyte").is_file():
        pytest.fail(f"MNIST not found under {DATA_DIR}/MNIST/raw (set MNIST_TINY_DATA_DIR)")
    return load_mnist(DATA_DIR, download_missing=False)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, mnist):
    """One short real training run (2 epochs on 4,000 images), shared by the tests that need a checkpoint."""
    from typer.testing import CliRunner

    from mnist_tiny.cli.app import app

    out = tmp_path_factory.mktemp("run") / "run"
    result = CliRunner().invoke(app, ["train", "--model", "s6-compact", "--epochs", "2", "--subset", "4000",
                                      "--val-size", "2000", "--seed", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out
