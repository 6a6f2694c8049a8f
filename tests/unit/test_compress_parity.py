from fulcrum.compress.parity import parity_problems
from fulcrum.recipe import ExportSection


def parity(diff: float, drop: float) -> dict:
    return {"max_abs_logit_diff": diff, "metric_drop_points": drop, "metric": "macro_f1"}


def test_within_tolerance_has_no_problems():
    assert parity_problems(parity(1e-5, 0.0), ExportSection()) == []
    assert parity_problems(parity(1e-3, 0.5), ExportSection()) == []  # limits are inclusive


def test_each_exceeded_limit_is_named_with_its_recipe_key():
    problems = parity_problems(
        parity(0.02, 1.25), ExportSection(max_abs_logit_diff=0.01, max_metric_drop=1.0)
    )
    assert problems == [
        "max |logit difference| 0.02 > export.max_abs_logit_diff 0.01",
        "macro_f1 drop 1.25 points > export.max_metric_drop 1",
    ]


def test_metric_gain_is_never_a_problem():
    assert parity_problems(parity(1e-6, -2.0), ExportSection(max_metric_drop=0.0)) == []
