"""Fulcrum: pretrained transformers to cheap, fast, autoscaled services."""

__version__ = "0.1.0"
