"""Our drop-in layers: `Dropout` behaves as `nn.Dropout` does, with a cheaper mask on the CPU."""

import torch

from mnist_tiny.models.layers import Dropout, dropout_mask


def test_dropout_mask_drops_p_of_the_values_independently_and_scales_the_rest():
    torch.manual_seed(0)
    for p in (0.05, 0.1, 0.5):
        mask = dropout_mask(torch.empty(1_000_000), p)
        dropped = mask == 0
        assert abs(dropped.double().mean().item() - p) < 0.003, p
        assert torch.allclose(mask[~dropped], torch.tensor(1 / (1 - p)))
        # neighbours (the 4 slices of one 64-bit draw among them) are independent
        a, b = dropped[:-1].double(), dropped[1:].double()
        assert abs((a * b).mean().item() - a.mean().item() * b.mean().item()) < 0.002, p


def test_dropout_mask_follows_the_layout_of_its_input():
    x = torch.rand(8, 12, 14, 14).to(memory_format=torch.channels_last)
    mask = dropout_mask(x, 0.1)
    assert mask.shape == x.shape and mask.is_contiguous(memory_format=torch.channels_last)
    assert dropout_mask(torch.rand(8, 16), 0.1).shape == (8, 16)
    assert dropout_mask(torch.rand(16, 8).t(), 0.1).shape == (8, 16)  # not dense in either layout


def test_dropout_trains_like_nn_dropout_and_is_the_identity_in_eval():
    layer = Dropout(0.1)
    assert isinstance(layer, torch.nn.Dropout) and layer.state_dict() == {}
    x = torch.rand(64, 16, 7, 7, requires_grad=True)
    y = layer(x)
    kept = y != 0
    assert 0.05 < 1 - kept.double().mean().item() < 0.15
    y.sum().backward()
    assert torch.allclose(x.grad, kept.float() / 0.9)  # gradient flows through the kept values, scaled
    torch.manual_seed(3)
    first = layer(x)
    torch.manual_seed(3)
    assert torch.equal(first, layer(x))  # drawn from torch's default generator: a seed (or a resume) replays it
    layer.eval()
    assert layer(x) is x
