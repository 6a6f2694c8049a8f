"""Compress stage: merged weights to ONNX, checked against the PyTorch parent."""
