"""The compress stage's judgements without a model: when a variant is deployable, what the
report recommends, and a tokenizer that is not the model's."""

from pathlib import Path

import pytest

from fulcrum.compress.gate import Tolerance, verdict
from fulcrum.compress.report import markdown, write_report
from fulcrum.errors import ArtifactError
from fulcrum.recipe import CompressSection, CompressVariant, ExportSection


def gate(drop_validation, drop_test, logit_diff=1e-6):
    return {
        split: {"metric": "accuracy", "metric_drop_points": drop, "max_abs_logit_diff": logit_diff}
        for split, drop in (("validation", drop_validation), ("test", drop_test))
    }


def test_a_variant_is_deployable_only_within_the_recipes_limits():
    tolerance = Tolerance.of("compress", CompressSection(max_metric_drop=1.0))
    assert verdict(gate(0.4, -0.2, logit_diff=0.9), "dynamic_int8", tolerance) == (True, [])
    deployable, reasons = verdict(gate(0.4, 1.6), "dynamic_int8", tolerance)
    assert not deployable
    assert reasons == ["test accuracy drops 1.60 points > compress.max_metric_drop 1"]
    deployable, reasons = verdict(gate(0.0, 0.0, logit_diff=0.01), "fp32", tolerance)
    assert not deployable and len(reasons) == 2, "fp32 must match on both splits"
    assert "max |logit difference| 0.01 > compress.max_abs_logit_diff 0.001" in reasons[0]


def test_export_and_compress_share_one_gate_and_its_defaults():
    """The export stage is the fp32 variant under `export:`'s limits, named as such."""
    export, compress = (
        Tolerance.of("export", ExportSection()),
        Tolerance.of("compress", CompressSection()),
    )
    assert (export.max_metric_drop, export.max_abs_logit_diff) == (
        compress.max_metric_drop,
        compress.max_abs_logit_diff,
    )
    deployable, reasons = verdict(gate(1.5, 0.0, logit_diff=2e-3), "fp32", export)
    assert not deployable
    assert reasons == [
        "validation accuracy drops 1.50 points > export.max_metric_drop 1",
        "validation max |logit difference| 0.002 > export.max_abs_logit_diff 0.001 "
        "(fp32 must match)",
        "test max |logit difference| 0.002 > export.max_abs_logit_diff 0.001 (fp32 must match)",
    ]
    assert verdict(gate(-0.5, 0.0), "fp32", export) == (True, [])  # a gain is never a problem


def test_static_int8_defaults_to_per_channel_scales():
    assert CompressVariant(kind="static_int8").resolved_per_channel is True
    assert CompressVariant(kind="dynamic_int8").resolved_per_channel is False
    assert CompressVariant(kind="static_int8", per_channel=False).resolved_per_channel is False
    assert CompressVariant(kind="static_int8").artifact_name == "static-int8"


def row(name, deployable, throughput, latency):
    return {
        "variant": name,
        "kind": name,
        "deployable": deployable,
        "size_mb": 10.0 if name == "pytorch-fp32" else 2.5,
        "validation_accuracy": 0.9,
        "test_accuracy": 0.88,
        "max_metric_drop_points": 0.0,
        "max_abs_logit_diff": 0.1,
        "batch1_p50_ms": latency,
        "batch1_p95_ms": latency * 1.5,
        "batch32_p50_ms": 32 * 1000 / throughput,
        "batch32_p95_ms": 40 * 1000 / throughput,
        "throughput_per_s": throughput,
        "not_deployable_because": None if deployable is not False else "test accuracy drops 3.00",
    }


def test_report_recommends_the_fastest_deployable_variant(tmp_path: Path):
    rows = [
        row("pytorch-fp32", None, 100.0, 20.0),
        row("dynamic-int8", True, 250.0, 6.0),
        row("static-int8", False, 400.0, 4.0),
    ]
    summary = write_report(tmp_path, rows, "demo", "accuracy", threads=2)
    assert summary["recommended"] == "dynamic-int8", "the faster variant failed its gate"
    by_name = {entry["variant"]: entry for entry in summary["variants"]}
    assert by_name["dynamic-int8"]["batch32_speedup"] == pytest.approx(2.5)
    assert by_name["dynamic-int8"]["batch1_speedup"] == pytest.approx(20 / 6)
    assert by_name["dynamic-int8"]["size_ratio"] == pytest.approx(0.25)
    text = (tmp_path / "report.md").read_text()
    assert "- static-int8: test accuracy drops 3.00" in text
    assert "| static-int8 | **no** |" in text
    assert (tmp_path / "report.png").stat().st_size > 10_000
    assert "No variant passed the gate." in markdown(rows[:1], "demo", "accuracy", 2, None)


def test_a_tokenizer_larger_than_the_embedding_is_refused(tmp_path: Path):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel

    from fulcrum.inference.predictor import _check_tokenizer_fits

    tokenizer = Tokenizer(WordLevel({f"w{i}": i for i in range(50)}, unk_token="w0"))
    _check_tokenizer_fits(tokenizer, 50, tmp_path / "tokenizer.json")
    with pytest.raises(ArtifactError, match="50 tokens, but the model's embedding has 30 rows"):
        _check_tokenizer_fits(tokenizer, 30, tmp_path / "tokenizer.json")


def test_the_matmul_whose_input_has_outliers_is_the_most_sensitive(tmp_path: Path):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from fulcrum.compress.variants import sensitive_matmuls

    weight = numpy_helper.from_array(np.eye(4, dtype=np.float32), "weight")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["smooth", "weight"], ["out_smooth"], name="smooth_mm"),
            helper.make_node("MatMul", ["spiky", "weight"], ["out_spiky"], name="spiky_mm"),
        ],
        "two",
        [
            helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, 4])
            for n in ("smooth", "spiky")
        ],
        [
            helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, 4])
            for n in ("out_smooth", "out_spiky")
        ],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "two.onnx"
    onnx.save(model, path)
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(4):
        spiky = rng.normal(size=(256, 4)).astype(np.float32)
        spiky[0, 0] = 80.0  # one rare, huge activation
        batches.append({"smooth": rng.normal(size=(256, 4)).astype(np.float32), "spiky": spiky})
    assert sensitive_matmuls(path, batches, count=1) == ["spiky_mm"]
    assert sorted(sensitive_matmuls(path, batches, count=5)) == ["smooth_mm", "spiky_mm"]
