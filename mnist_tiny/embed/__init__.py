"""Embedding and serving: ONNX export (needs torch), a reader that runs on onnxruntime + numpy alone, the server."""
