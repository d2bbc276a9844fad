"""Batch augmentation: our affine grid is torch's, computed as one matrix product."""

import torch
import torch.nn.functional as F

from mnist_tiny.data.augment import affine_grid, random_affine, to_float


def test_affine_grid_matches_torch_for_any_size_and_batch():
    torch.manual_seed(0)
    for n, height, width in [(64, 28, 28), (1, 28, 28), (5, 20, 32)]:
        theta = torch.randn(n, 2, 3)
        ours = affine_grid(theta, height, width)
        assert ours.shape == (n, height, width, 2) and ours.is_contiguous()
        torch.testing.assert_close(ours, F.affine_grid(theta, [n, 1, height, width], align_corners=False))


def test_random_affine_keeps_digits_recognisable_and_the_identity_is_exact():
    images = torch.zeros(8, 28, 28, dtype=torch.uint8)
    images[:, 10:18, 12:16] = 255
    x = to_float(images)
    assert random_affine(x, 0, 0, 0, torch.Generator().manual_seed(1)) is x
    out = random_affine(x, 7, 0.06, 0.06, torch.Generator().manual_seed(1))
    assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1
    ink = out.sum((1, 2, 3)) / x.sum((1, 2, 3))
    assert ((0.8 < ink) & (ink < 1.25)).all()  # moved and turned a little, not lost or smeared away
    assert not torch.equal(out[0], out[1])  # one transform per image
