"""Hostile input, third round — ONNX files: only digit readers are loaded, each run is bounded, their metadata never drives the terminal."""

import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hostile3 import ESCAPE, EXAMPLES, SCRIPT, one_line_error
from mnist_tiny.cli.app import app


# ONNX: only digit readers, each run bounded

def _onnx(path: Path, nodes, inputs, outputs, inits, meta=None) -> Path:
    import onnx
    from onnx import helper

    model = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in (meta or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def _linear(path, classes=10, batch="N", fill=0.0, meta=None):
    from onnx import TensorProto as T
    from onnx import helper

    x = helper.make_tensor_value_info("x", T.FLOAT, [batch, 1, 28, 28])
    y = helper.make_tensor_value_info("y", T.FLOAT, [batch, classes])
    weights = np.random.default_rng(0).normal(size=(784, classes)).astype(np.float32) * 0.01
    weights[0, 0] = fill if fill != 0.0 else weights[0, 0]
    bias = np.full(classes, fill, np.float32) if fill != 0.0 else np.zeros(classes, np.float32)
    inits = [helper.make_tensor("w", T.FLOAT, [784, classes], weights.ravel()),
             helper.make_tensor("b", T.FLOAT, [classes], bias),
             helper.make_tensor("s", T.INT64, [2], [-1, 784])]
    nodes = [helper.make_node("Reshape", ["x", "s"], ["f"]), helper.make_node("MatMul", ["f", "w"], ["m"]),
             helper.make_node("Add", ["m", "b"], ["y"])]
    return _onnx(path, nodes, [x], [y], inits, meta)


def _looping(path):
    from onnx import TensorProto as T
    from onnx import helper

    body = helper.make_graph(
        [helper.make_node("Identity", ["c_in"], ["c_out"]), helper.make_node("Identity", ["v_in"], ["v_out"])],
        "body", [helper.make_tensor_value_info("i", T.INT64, []), helper.make_tensor_value_info("c_in", T.BOOL, []),
                 helper.make_tensor_value_info("v_in", T.FLOAT, None)],
        [helper.make_tensor_value_info("c_out", T.BOOL, []), helper.make_tensor_value_info("v_out", T.FLOAT, None)])
    x = helper.make_tensor_value_info("x", T.FLOAT, ["N", 1, 28, 28])
    y = helper.make_tensor_value_info("y", T.FLOAT, ["N", 10])
    inits = [helper.make_tensor("w", T.FLOAT, [784, 10], np.zeros(7840, np.float32)),
             helper.make_tensor("s", T.INT64, [2], [-1, 784]), helper.make_tensor("M", T.INT64, [], [2 ** 62]),
             helper.make_tensor("c", T.BOOL, [], [True])]
    nodes = [helper.make_node("Reshape", ["x", "s"], ["f"]), helper.make_node("MatMul", ["f", "w"], ["y0"]),
             helper.make_node("Loop", ["M", "c", "y0"], ["y"], body=body)]
    return _onnx(path, nodes, [x], [y], inits)


@pytest.mark.parametrize("make, words", [
    (lambda p: _linear(p, classes=1000), ["not N×10"]),
    (lambda p: _linear(p, fill=float("nan")), ["NaN"]),
    (lambda p: _linear(p, batch=1), ["fixed batch of 1"]),
    (_looping, ["did not finish within 5 s"]),
])
def test_onnx_files_that_are_not_digit_readers_are_refused_in_one_line(tmp_path, make, words):
    model = make(tmp_path / "m.onnx")
    start = time.monotonic()
    result = CliRunner().invoke(app, ["predict", str(EXAMPLES / "marker-8.png"), "--checkpoint", str(model)])
    one_line_error(result, str(model), *words)
    assert time.monotonic() - start < 30


def test_onnx_metadata_never_drives_the_terminal(tmp_path):
    model = _linear(tmp_path / "m.onnx", meta={"model": f"evil{ESCAPE}name"})
    result = subprocess.run([SCRIPT, "predict", str(EXAMPLES / "marker-8.png"), "--checkpoint", str(model)],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert "\x1b]0;" not in result.stdout and "\x07" not in result.stdout
    assert "\\x1b]0;pwned\\x07" in result.stdout, result.stdout


def test_the_watchdog_stops_every_run_past_its_deadline_and_no_other():
    from types import SimpleNamespace

    from mnist_tiny.embed.runtime import Watchdog

    dog = Watchdog()
    for _ in range(3):  # finished runs: the thread sleeps until the first one's deadline, 30 s away
        dog.forget(dog.watch(30.0, SimpleNamespace(terminate=False)))
    stuck = [SimpleNamespace(terminate=False) for _ in range(3)]
    dog.watch(0.3, stuck[0])  # earlier than the thread's wake-up: it is woken
    dog.watch(0.6, stuck[1])  # later than that: found when the thread wakes for the first
    done = SimpleNamespace(terminate=False)
    dog.forget(dog.watch(0.1, done))
    dog.watch(0.9, stuck[2])
    give_up = time.monotonic() + 10  # far under the 30 s the thread slept towards: it was woken for these
    while not all(s.terminate for s in stuck) and time.monotonic() < give_up:
        time.sleep(0.02)
    assert all(s.terminate for s in stuck) and not done.terminate
