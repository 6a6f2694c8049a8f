"""Framework-free inference over ONNX Runtime: no torch, no transformers, so a Serve replica
starts fast and stays small."""

from fulcrum.inference.predictor import OnnxClassifier

__all__ = ["OnnxClassifier"]
