import pytest
import torch

import mnist_tiny
from mnist_tiny.errors import UserError


def test_reference_models_have_exact_parameter_counts():
    assert mnist_tiny.count_params(mnist_tiny.get_model("s6-attention")) == 10_550
    assert mnist_tiny.count_params(mnist_tiny.get_model("s6-compact")) == 6_926


@pytest.mark.parametrize("name", mnist_tiny.list_models())
def test_every_model_maps_pixels_to_ten_logits(name):
    model = mnist_tiny.get_model(name).eval()
    out = model(torch.rand(3, 1, 28, 28))
    assert out.shape == (3, 10) and torch.isfinite(out).all()


def test_default_model_is_registered():
    assert mnist_tiny.DEFAULT_MODEL in mnist_tiny.list_models()


def test_unknown_model_names_the_known_ones():
    with pytest.raises(UserError) as e:
        mnist_tiny.get_model("s6-compactt")
    assert "did you mean 's6-compact'" in str(e.value) and "s6-attention" in str(e.value)


def test_registering_a_model_is_one_decorator():
    from torch import nn

    from mnist_tiny.models.registry import _REGISTRY, register_model

    @register_model("test-linear", "a test model", recipe={"epochs": 1})
    def build():
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))

    try:
        assert "test-linear" in mnist_tiny.list_models()
        assert mnist_tiny.count_params(mnist_tiny.get_model("test-linear")) == 7850
        assert mnist_tiny.resolve_settings({"model": "test-linear"}, environ={}).epochs == 1
    finally:
        del _REGISTRY["test-linear"]


def test_s6_lean_computes_every_function_s6_compact_can_with_48_fewer_parameters():
    """Fold a trained-looking s6-compact (random BN statistics, affine and biases) into s6-lean: same outputs."""
    torch.manual_seed(0)
    compact, lean = mnist_tiny.get_model("s6-compact").eval(), mnist_tiny.get_model("s6-lean").eval()
    assert mnist_tiny.count_params(compact) - mnist_tiny.count_params(lean) == 48
    with torch.no_grad():
        for module in compact.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2)
                module.weight.normal_()
                module.bias.normal_()
            elif isinstance(module, torch.nn.Conv2d):
                module.bias.normal_()
        state = {k: v.clone() for k, v in compact.state_dict().items()}
        shift = state.pop("transition.1.bias")  # absorbed by the next valid conv's bias
        state["block2.0.0.bias"] += state["block2.0.0.weight"].sum((2, 3)) @ shift
        gamma, beta = state.pop("block3.1.2.weight"), state.pop("block3.1.2.bias")  # absorbed by the FC layer
        state["fc.bias"] += state["fc.weight"] @ beta
        state["fc.weight"] *= gamma
        lean.load_state_dict(state)
        x = torch.rand(16, 1, 28, 28)
        torch.testing.assert_close(lean(x), compact(x), rtol=1e-4, atol=1e-4)


def test_s6_attention_pooling_before_relu_changes_no_bit_of_the_reference():
    """s6-attention max-pools before its ReLU (faster); the reference's order, ReLU then pool, must give the same
    outputs and gradients bit for bit, ties in blank backgrounds included."""
    from torch import nn

    from mnist_tiny.models.reference import _conv_bn

    ours = mnist_tiny.get_model("s6-attention")
    reference = mnist_tiny.get_model("s6-attention")
    reference.block1 = nn.Sequential(_conv_bn(1, 8), _conv_bn(8, 12), nn.MaxPool2d(2), nn.Dropout(0.1))
    reference.block2 = nn.Sequential(_conv_bn(12, 16), nn.MaxPool2d(2), nn.Dropout(0.1))
    reference.load_state_dict(ours.state_dict())
    x = torch.zeros(32, 1, 28, 28)
    x[:, :, 6:22, 6:22] = torch.rand(32, 1, 16, 16)  # a blank border: equal values in many pooling windows
    labels = torch.arange(32) % 10
    for model in (ours, reference):
        torch.manual_seed(0)  # the same dropout masks
        torch.nn.functional.cross_entropy(model(x), labels).backward()
    for (name, a), b in zip(ours.named_parameters(), reference.parameters()):
        assert torch.equal(a.grad, b.grad), name
    assert torch.equal(ours.eval()(x), reference.eval()(x))
