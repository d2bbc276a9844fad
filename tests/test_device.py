"""Layouts on the CPU: training in the layout measured fastest for the thread count, inference in channels-last on
a copy, so evaluating mid-training never changes the model being trained."""

import torch

from mnist_tiny import get_model
from mnist_tiny.fast import inference_copy, prepare

CPU = torch.device("cpu")


def first_conv_weight(model):
    return next(p for p in model.parameters() if p.ndim == 4)


def test_training_layout_follows_threads_and_inference_copy_leaves_the_model_alone():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        model = prepare(get_model("lean-6k"), CPU, training=True)
        assert first_conv_weight(model).is_contiguous()
        copy = inference_copy(model, CPU)
        assert copy is not model
        assert first_conv_weight(copy).is_contiguous(memory_format=torch.channels_last)
        assert first_conv_weight(model).is_contiguous()  # the training model keeps its layout
        x = torch.rand(8, 1, 28, 28)
        with torch.inference_mode():
            assert torch.allclose(model.eval()(x), copy.eval()(x), atol=1e-5)

        torch.set_num_threads(1)
        single = prepare(get_model("lean-6k"), CPU, training=True)
        assert first_conv_weight(single).is_contiguous(memory_format=torch.channels_last)
    finally:
        torch.set_num_threads(threads)


def test_inference_folds_conv_batchnorm_pairs_and_keeps_the_outputs():
    """`prepare_model` for inference merges each Conv2d → BatchNorm2d pair of an nn.Sequential; same logits."""
    trained = get_model("s6-attention", pretrained=True).eval()
    folded = prepare(get_model("s6-attention", pretrained=True), CPU)
    norms = [m for m in folded.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 1  # the residual block's conv → bn is a module of its own, not a Sequential: kept
    assert not folded.training
    x = torch.rand(32, 1, 28, 28)
    with torch.inference_mode():
        assert torch.allclose(trained(x), folded(x), atol=1e-4)
    # conv → ReLU → BN (s6-compact's order) cannot be folded into the conv before it: left as it is
    compact = prepare(get_model("s6-compact"), CPU)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in compact.modules()) == 5
