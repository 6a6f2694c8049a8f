"""Data: labelled files in, label-encoded splits out (Ray Data comes in at the train stage)."""

from fulcrum.data.dataset import LabelledSplits, load_splits, recipe_splits, texts_of

__all__ = ["LabelledSplits", "load_splits", "recipe_splits", "texts_of"]
