"""Hyperparameter campaigns on Ray Tune: every trial is a Ray Train run of the recipe with
some keys changed; the campaign artifact holds the results, the best recipe and plots."""
