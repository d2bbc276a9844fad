"""`recalibrate_bn`: BatchNorm statistics taken again on clean training images before a checkpoint is scored."""
import json

import torch
from torch import nn
from typer.testing import CliRunner

from mnist_tiny.cli.app import app
from mnist_tiny.data.augment import to_float
from mnist_tiny.evaluation.metrics import loss_and_accuracy
from mnist_tiny.training.bn_stats import recalibrated
from mnist_tiny.training.checkpoint import load_checkpoint, read_checkpoint


def test_recalibrated_statistics_are_the_batch_average_over_the_drawn_clean_images(mnist):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Dropout(0.5), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 26 * 26, 10)).train()
    images = mnist["train"].images[:3000]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    copy = recalibrated(model, images, 1000, seed=7, batch_size=250)

    # The model itself is untouched; the copy differs only in the BatchNorm buffers, and is in eval mode.
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()) and model.training
    assert not copy.training and copy[2].momentum == model[2].momentum
    for k, v in copy.state_dict().items():
        if not k.startswith("2.running") and k != "2.num_batches_tracked":
            assert torch.equal(v, before[k]), k
    # Four batches of the 1,000 images `seed` draws, unaugmented and without dropout: mean of the batch statistics.
    order = torch.randperm(3000, generator=torch.Generator().manual_seed(7))[:1000]
    with torch.no_grad():
        z = [model[0](to_float(images[chunk])) for chunk in order.split(250)]
    mean = torch.stack([b.mean((0, 2, 3)) for b in z]).mean(0)
    var = torch.stack([b.transpose(0, 1).flatten(1).var(1) for b in z]).mean(0)
    assert torch.allclose(copy[2].running_mean, mean, atol=1e-6) and torch.allclose(copy[2].running_var, var, atol=1e-5)
    assert int(copy[2].num_batches_tracked) == 4


def test_a_model_without_batchnorm_is_returned_as_it_is(mnist):
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    copy = recalibrated(model, mnist["train"].images[:100], 100, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), copy.state_dict().values()))


def test_train_with_recalibration_saves_and_scores_the_recalibrated_weights(tmp_path, mnist):
    """The checkpoint holds the recalibrated statistics, the validation figure in metrics is what those weights
    score, and the weights a resume continues from are the training ones (their own running averages)."""
    args = ["train", "--model", "tiny-2k", "--epochs", "1", "--subset", "2000", "--val-size", "500", "--seed", "2",
            "--json"]
    plain = CliRunner().invoke(app, args + ["--out", str(tmp_path / "plain")])
    recal = CliRunner().invoke(app, args + ["--set", "recalibrate_bn=1000", "--out", str(tmp_path / "recal")])
    assert plain.exit_code == 0 and recal.exit_code == 0, plain.output + recal.output
    a, b = json.loads(plain.stdout), json.loads(recal.stdout)
    assert a["history"][0]["train_loss"] == b["history"][0]["train_loss"]  # the same training
    assert a["history"][0]["val_acc"] != b["history"][0]["val_acc"]

    raw = read_checkpoint(tmp_path / "recal" / "last.pt")
    stats = [k for k in raw["state_dict"] if k.endswith("running_mean")]
    assert stats and all(not torch.equal(raw["state_dict"][k], raw["train_state_dict"][k]) for k in stats)
    plain_raw = read_checkpoint(tmp_path / "plain" / "last.pt")
    assert all(torch.equal(plain_raw["state_dict"][k], raw["train_state_dict"][k]) for k in stats)

    from mnist_tiny.data.mnist import train_val_split
    _, val = train_val_split(mnist["train"], 500, 2, 2000)
    loaded = load_checkpoint(tmp_path / "recal" / "last.pt")
    _, acc = loss_and_accuracy(loaded.model, val.images, val.labels, torch.device("cpu"))
    assert acc == b["history"][0]["val_acc"]
