"""Our drop-in layers: `Dropout` behaves as `nn.Dropout` does, with a cheaper mask on the CPU; a pooled conv run at
a width of 8 channels computes what the plain layers do."""

import copy

import torch
from torch import nn

from mnist_tiny.fast import fold_batchnorm
from mnist_tiny.fast.kernels import Dropout, dropout_mask, pooled_at_width_of_8


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


def test_a_pooled_conv_at_a_width_of_8_channels_computes_what_the_plain_layers_do():
    torch.manual_seed(0)
    layers = nn.ModuleList([nn.Conv2d(8, 12, 3, padding=1), nn.BatchNorm2d(12), nn.MaxPool2d(2)])
    layers = layers.to(memory_format=torch.channels_last)
    x = torch.zeros(16, 8, 28, 28)
    x[:, :, 5:21, 5:21] = torch.randn(16, 8, 16, 16)  # a blank border: ties in many pooling windows
    x = x.contiguous(memory_format=torch.channels_last)
    g = torch.randn(16, 12, 14, 14)

    def run(conv, norm, pool, padded):
        inputs = x.clone().requires_grad_()
        out = pooled_at_width_of_8(inputs, conv, norm, pool) if padded else pool(norm(conv(inputs)))
        out.backward(g)
        return out, inputs.grad

    plain = copy.deepcopy(layers)
    for step in range(3):  # running statistics accumulate the same way
        out, grad_in = run(*layers, padded=True)
        plain_out, plain_grad_in = run(*plain, padded=False)
        assert torch.equal(out, plain_out) and out.is_contiguous(memory_format=torch.channels_last)
        assert torch.allclose(grad_in, plain_grad_in, atol=1e-6)
        assert grad_in.is_contiguous(memory_format=torch.channels_last)
        for (name, a), b in zip(layers.named_parameters(), plain.parameters()):  # summed in another order
            # The conv's bias gradient is 0 in exact arithmetic (a BatchNorm follows): what is computed is the
            # rounding left over from summing terms of ~100, up to ~1e-5 on one thread.
            assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-4 if name == "0.bias" else 1e-7), name
        for a, b in zip(layers.buffers(), plain.buffers()):
            assert torch.equal(a, b)

    layers.eval(), plain.eval()
    with torch.no_grad():
        assert torch.equal(pooled_at_width_of_8(x, *layers), plain[2](plain[1](plain[0](x))))  # eval-mode BatchNorm
        folded = fold_batchnorm(nn.Sequential(*copy.deepcopy(layers)))
        assert isinstance(folded[1], nn.Identity)
        assert torch.equal(pooled_at_width_of_8(x, *folded), folded(x))  # BatchNorm folded into the conv
        assert torch.equal(pooled_at_width_of_8(x, layers[0], None, layers[2]), layers[2](layers[0](x)))
        nchw = x.contiguous()  # other layouts take the plain path
        assert torch.equal(pooled_at_width_of_8(nchw, *layers), plain[2](plain[1](plain[0](nchw))))


def test_every_model_trains_on_the_kernels_a_user_s_too_unless_the_setting_says_no():
    """`prepare` swaps the kernels into any model (issue 35: a user's model gets our speed); `fast_kernels=false`
    keeps torch's layers; a Sequential whose class computes something of its own keeps its forward."""
    from mnist_tiny.fast import prepare

    def user_model():  # written as a student would: nothing of ours
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 12, 3, padding=1), nn.BatchNorm2d(12), nn.MaxPool2d(2), nn.ReLU(),
                             nn.Dropout(0.1), nn.Flatten(), nn.Linear(12 * 14 * 14, 10))

    class Doubled(nn.Sequential):
        def forward(self, x):
            return 2 * super().forward(x)

    cpu = torch.device("cpu")
    x = torch.rand(8, 1, 28, 28)
    fast, plain = prepare(user_model(), cpu, training=True), prepare(user_model(), cpu, training=True, kernels=False)
    assert type(fast[4]) is Dropout and "forward" in vars(fast)  # the 12-wide conv → BN → pool block at 16
    assert type(plain[4]) is nn.Dropout and "forward" not in vars(plain)
    fast.eval(), plain.eval()
    with torch.no_grad():
        assert torch.equal(fast(x.contiguous(memory_format=torch.channels_last)),
                           plain(x.contiguous(memory_format=torch.channels_last)))
    doubled = Doubled(*user_model())
    reference = copy.deepcopy(doubled).eval()
    prepare(doubled, cpu, training=True)
    assert "forward" not in vars(doubled) and type(doubled[4]) is Dropout
    with torch.no_grad():
        assert torch.equal(doubled.eval()(x), reference(x))
