"""Our SGD must be torch.optim.SGD, update for update, and share its checkpoint format (old last.pt files resume)."""

import copy

import torch
import torch.nn.functional as F

from mnist_tiny import get_model
from mnist_tiny.fast.sgd import SGD


def param_groups(model):
    return [{"params": [p for p in model.parameters() if p.ndim > 1], "weight_decay": 5e-4},
            {"params": [p for p in model.parameters() if p.ndim <= 1], "weight_decay": 0.0}]


def steps(model, optimizer, n, x, y):
    for _ in range(n):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()


def twins():
    """lean-6k twice with the same weights, ours and torch's SGD over them, and a batch."""
    torch.manual_seed(0)
    ours_model = get_model("lean-6k")
    torch_model = copy.deepcopy(ours_model)
    x, y = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
    ours = SGD(param_groups(ours_model), lr=0.1, momentum=0.9, nesterov=True)
    reference = torch.optim.SGD(param_groups(torch_model), lr=0.1, momentum=0.9, nesterov=True)
    return ours_model, torch_model, ours, reference, x, y


def test_sgd_matches_torch_and_state_dicts_interchange():
    ours_model, torch_model, ours, reference, x, y = twins()
    steps(ours_model, ours, 3, x, y)
    steps(torch_model, reference, 3, x, y)
    for a, b in zip(ours_model.state_dict().values(), torch_model.state_dict().values()):
        assert torch.equal(a, b)

    # Swap the optimizers' states (as resuming an older last.pt does) and go on: still identical.
    swapped_ours = SGD(param_groups(ours_model), lr=0.1, momentum=0.9, nesterov=True)
    swapped_ours.load_state_dict(reference.state_dict())
    swapped_torch = torch.optim.SGD(param_groups(torch_model), lr=0.1, momentum=0.9, nesterov=True)
    swapped_torch.load_state_dict(ours.state_dict())
    steps(ours_model, swapped_ours, 2, x, y)
    steps(torch_model, swapped_torch, 2, x, y)
    for a, b in zip(ours_model.state_dict().values(), torch_model.state_dict().values()):
        assert torch.equal(a, b)


def test_sgd_keeps_parameters_and_gradients_in_flat_buffers_and_honours_gradients_set_by_other_code():
    ours_model, torch_model, ours, reference, x, y = twins()
    storage = ours.flat_params.untyped_storage().data_ptr()
    assert all(p.untyped_storage().data_ptr() == storage for p in ours_model.parameters())
    steps(ours_model, ours, 2, x, y)
    steps(torch_model, reference, 2, x, y)
    assert all(p.grad._base is ours.flat_grads for p in ours_model.parameters())  # backward added in place

    # A gradient that other code replaced (clipping, a hook) is the one that counts.
    for model, optimizer in ((ours_model, ours), (torch_model, reference)):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        model.fc.weight.grad = model.fc.weight.grad * 0.5
        optimizer.step()
    for a, b in zip(ours_model.state_dict().values(), torch_model.state_dict().values()):
        assert torch.equal(a, b)
    assert ours_model.fc.weight.grad._base is ours.flat_grads


def test_sgd_resumes_a_torch_state_that_lacks_some_momentum_buffers():
    torch.manual_seed(0)
    torch_model = get_model("lean-6k")
    x, y = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
    reference = torch.optim.SGD(param_groups(torch_model), lr=0.1, momentum=0.9, nesterov=True)
    steps(torch_model, reference, 2, x, y)
    state = reference.state_dict()
    del state["state"][0]  # as for a parameter torch.optim never stepped
    ours_model = copy.deepcopy(torch_model)
    ours = SGD(param_groups(ours_model), lr=0.1, momentum=0.9, nesterov=True)
    ours.load_state_dict(state)
    reference.load_state_dict(state)
    steps(ours_model, ours, 2, x, y)
    steps(torch_model, reference, 2, x, y)
    for a, b in zip(ours_model.state_dict().values(), torch_model.state_dict().values()):
        assert torch.equal(a, b)


def test_make_optimizer_leaves_frozen_parameters_alone():
    from mnist_tiny.training.optim import make_optimizer
    from mnist_tiny.settings import Settings

    model = get_model("lean-6k")
    model.fc.weight.requires_grad_(False)
    frozen = model.fc.weight.detach().clone()
    optimizer = make_optimizer(model, Settings())
    steps(model, optimizer, 2, torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,)))
    assert torch.equal(model.fc.weight, frozen)  # no weight decay or momentum on a parameter that takes no gradient
