"""The closed sets of values a setting or flag takes: one definition for pydantic (Settings) and Typer (the CLI).

A leaf: no imports of the package, so `--help` stays cheap."""

from typing import Literal

Optimizer = Literal["sgd", "adamw"]
Scheduler = Literal["onecycle", "cosine", "constant"]
Device = Literal["auto", "cpu", "cuda", "mps"]
InputScaling = Literal["auto", "unit", "mnist"]
Split = Literal["test", "val", "train"]
Count = Literal["total", "trainable", "with_bn_stats"]
Sort = Literal["val", "test", "time", "params", "name"]
ExportFormat = Literal["onnx"]
Expect = Literal["auto", "one", "many"]
