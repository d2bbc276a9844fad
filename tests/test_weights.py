"""Every shipped weight file meets the figure recorded with it, scored by an independent loop on raw test pixels."""

import pytest
import torch

import mnist_tiny
from mnist_tiny.training.checkpoint import read_checkpoint
from mnist_tiny.models.refs import get_spec

SHIPPED = [name for name in mnist_tiny.list_models() if get_spec(name).has_weights]


def test_the_default_model_ships_weights():
    assert mnist_tiny.DEFAULT_MODEL in SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_meet_their_recorded_accuracy(name, mnist):
    meta = read_checkpoint(get_spec(name).weights_path)["meta"]
    for key in ("params", "macs", "test_acc", "val_acc", "epochs", "seed", "recipe", "command", "sweep"):
        assert key in meta, key
    model = mnist_tiny.get_model(name, pretrained=True).eval()
    assert meta["params"] == sum(p.numel() for p in model.parameters())
    images, labels = mnist["test"].images, mnist["test"].labels
    with torch.no_grad():
        x = images.unsqueeze(1).float() / 255  # N×1×28×28 in [0, 1], nothing else
        correct = sum(int((model(x[i:i + 1000]).argmax(1) == labels[i:i + 1000]).sum()) for i in range(0, 10000, 1000))
    assert correct / 10000 >= meta["test_acc"] - 0.0005
    # the shipped run is one of the recorded sweep's runs (its figure is among theirs); where the headline sweep was
    # measured again later (more seeds, another machine), the sweep it came from is kept as `shipped_from`
    source = meta.get("shipped_from", meta["sweep"])
    assert meta["seed"] in source["seeds"]
    assert min(abs(t - meta["test_acc"]) for t in source["test_acc"]) < 1e-4


@pytest.mark.parametrize("name", [mnist_tiny.DEFAULT_MODEL, "s6-compact", "s6-attention"])
def test_default_and_reference_sweeps_reach_99_4_without_choosing_on_test(name):
    """The recorded 5+-seed sweep (last epoch, fixed recipe) averages at least 99.40% on the test set."""
    meta = read_checkpoint(get_spec(name).weights_path)["meta"]
    assert meta["checkpoint"] == "last" and meta["epochs"] <= 15
    assert len(meta["sweep"]["seeds"]) >= 5 and meta["sweep"]["mean"] >= 0.994


def test_the_default_reaches_99_4_on_every_seed_of_its_headline_sweep():
    """README's promise for the plain `mnist-tiny train`: ten seeds or more, seed 0 (the default) among them, each at
    least 99.40% on the test set at the last epoch; and the shipped file is one of those runs."""
    meta = read_checkpoint(get_spec(mnist_tiny.DEFAULT_MODEL).weights_path)["meta"]
    sweep = meta["sweep"]
    assert len(sweep["seeds"]) >= 10 and 0 in sweep["seeds"] and min(sweep["test_acc"]) >= 0.994
    assert "shipped_from" not in meta and meta["seed"] in sweep["seeds"]


# Issue 23's classes, each with the shipped model that meets it: name -> (parameter bound, epoch limit or None, "must"
# on the mean, the course rules it must pass as well). "Small and fast" (`fast-6k`) also has a time bound, 90 s a run
# on 2 cores: a benchmark's figure (docs/performance.md), not a timed test. `nano-594` (97.51% mean over ten seeds, its shipped
# seed 97.47%) stays in the registry beside `nano-600`, which took its place in the ≤600 class.
FRONTIER = {
    "course-8k": (8_000, 15, 0.994, "bn,dropout,gap,fc"),
    "small-5k": (5_000, 15, 0.993, None),
    "fast-6k": (6_900, None, 0.994, None),
    "micro-2k": (2_000, 20, 0.991, None),
    "micro-1k": (1_000, 30, 0.985, None),
    "nano-600": (600, 30, 0.975, None),
}


@pytest.mark.parametrize("name", sorted(FRONTIER))
def test_a_frontier_model_meets_its_class_on_the_raw_test_set(name, mnist):
    """Its size and recipe are within the class, the recorded sweep (≥ 5 seeds, last epoch, never chosen on test)
    averages the class's "must", and the shipped weights, scored here by a plain loop on raw pixels, meet it too."""
    bound, epoch_limit, must, rules = FRONTIER[name]
    meta = read_checkpoint(get_spec(name).weights_path)["meta"]
    model = mnist_tiny.get_model(name, pretrained=True).eval()
    assert sum(p.numel() for p in model.parameters()) <= bound
    assert meta["checkpoint"] == "last" and (epoch_limit is None or meta["epochs"] <= epoch_limit)
    assert len(meta["sweep"]["seeds"]) >= 5 and meta["sweep"]["mean"] >= must
    images, labels = mnist["test"].images, mnist["test"].labels
    with torch.no_grad():
        predicted = torch.cat([model(images[i:i + 1000].unsqueeze(1).float() / 255).argmax(1)
                               for i in range(0, 10000, 1000)])
    assert (predicted == labels).float().mean().item() >= must
    if rules:
        verdict = mnist_tiny.check(name, max_params=bound, require=rules)
        assert verdict["passed"], verdict["checks"]
