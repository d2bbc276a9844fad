"""The course's rules as tests, through mnist-tiny's Python API (run with `pytest`)."""

import torch

import mnist_tiny
from mnist_tiny import check

MODEL = "model.py:Net"


def test_the_model_reads_a_batch_of_digits():
    model = mnist_tiny.get_model(MODEL).eval()
    assert model(torch.rand(4, 1, 28, 28)).shape == (4, 10)


def test_the_model_follows_the_course_rules():
    result = check(MODEL, max_params=8_000, require="bn,dropout,gap,fc")
    failed = [f"{c['name']}: {c['detail']}" for c in result["checks"] if not c["ok"]]
    assert not failed, failed
