"""Token attributions: why a model decided, word by word.

Two methods, one output shape (`Explanation`: words with character offsets and scores):
Integrated Gradients on the embedding layer for PyTorch training artifacts, and occlusion
(mask a word, measure the drop) for the ONNX artifacts that Serve runs, which have no
gradients. Scores are aggregated from subwords to the words a person reads.
"""

from fulcrum.explain.words import Explanation, WordScore, word_scores

__all__ = ["Explanation", "WordScore", "word_scores"]
