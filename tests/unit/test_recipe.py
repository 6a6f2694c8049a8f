"""Recipe validation: every error names its key path and the problem."""

from pathlib import Path

import pytest

from fulcrum.errors import RecipeError
from fulcrum.recipe import apply_overrides, load_recipe, validate_recipe

MINIMAL = {"name": "demo", "data": {"path": "data.csv"}}


def errors_of(raw) -> list[str]:
    with pytest.raises(RecipeError) as caught:
        validate_recipe(raw)
    return str(caught.value).splitlines()[1:]


def with_section(section: str, **values) -> dict:
    return {**MINIMAL, section: values}


def test_minimal_recipe_gets_documented_defaults():
    recipe = validate_recipe(MINIMAL)
    assert recipe.model.base is None  # settled from the training texts (fulcrum.defaults)
    assert recipe.train.workers == 2
    assert recipe.train.zero_stage == 2
    assert recipe.peft.method == "lora"
    assert recipe.serve.host == "127.0.0.1"


def test_issue_example_message():
    assert errors_of(with_section("train", lr=-1)) == ["  train.lr: must be > 0 (got -1)"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (with_section("train", zero_stage=4), "train.zero_stage: must be <= 3 (got 4)"),
        (with_section("train", workers=0), "train.workers: must be >= 1 (got 0)"),
        (with_section("train", epochs=1.5), "train.epochs: must be an integer (got 1.5)"),
        (with_section("train", lr="fast"), 'train.lr: must be a number (got "fast")'),
        (
            with_section("train", use_gpu="maybe"),
            'train.use_gpu: must be true or false (got "maybe")',
        ),
        (
            with_section("peft", method="qlora"),
            "peft.method: must be one of 'lora', 'adalora', 'ia3', 'prefix', 'head_only' or 'full'"
            ' (got "qlora")',
        ),
        (
            with_section("train", learning_rate=1),
            "train.learning_rate: unknown key (did you mean `lr`?)",
        ),
        (
            with_section("peft", lora_alpha=1),
            "peft.lora_alpha: unknown key (did you mean `alpha`?)",
        ),
        (with_section("train", epoch=1), "train.epoch: unknown key (did you mean `epochs`?)"),
        ({**MINIMAL, "trian": {}}, "trian: unknown key (did you mean `train`?)"),
        ({"data": {"path": "x"}}, "name: required"),
        (
            {**MINIMAL, "name": "Bad Name"},
            'name: must match ^[a-z0-9][a-z0-9_-]*$ (got "Bad Name")',
        ),
        ({**MINIMAL, "model": "minilm"}, 'model: must be a mapping (got "minilm")'),
        (
            {**MINIMAL, "data": {"path": "x", "labels": ["a", "b", "a"]}},
            "data.labels: labels must be unique (repeated: a)",
        ),
        (
            {**MINIMAL, "data": {"path": "x", "labels": ["a"]}},
            "data.labels: needs at least 2 item(s) (got ['a'])",
        ),
        (
            {**MINIMAL, "data": {"path": "x", "labels": ["a", 3]}},
            "data.labels[1]: must be a string (got 3)",
        ),
        (
            {**MINIMAL, "data": {}},
            "data: give exactly one of `path` (one file to split) or `train`",
        ),
        (
            {**MINIMAL, "data": {"path": "x", "test": "y"}},
            "data: `validation`/`test` files go with `train`, not with `path`",
        ),
        (
            with_section("serve", autoscaling={"min_replicas": 3, "max_replicas": 2}),
            "serve.autoscaling: max_replicas (2) must be >= min_replicas (3)",
        ),
        (
            with_section("serve", rank_prefilter=20),
            "serve.rank_prefilter: filters the candidates of a text-pair model's /rank; "
            "not for sequence_classification",
        ),
        (
            {**MINIMAL, "explain": {}},
            "explain: this section is planned but not supported by this version",
        ),
        (
            {**MINIMAL, "compress": {"variants": ["fp32", {"kind": "fp32"}]}},
            "compress: variants: two variants would both be written to fp32/ (give each a name)",
        ),
        (
            {**MINIMAL, "compress": {"variants": ["int4"]}},
            "compress.variants[0].kind: must be one of 'fp32', 'dynamic_int8', 'static_int8' "
            "or 'fp16' (got \"int4\")",
        ),
    ],
)
def test_error_names_key_path_and_problem(raw, expected):
    lines = [line.strip() for line in errors_of(raw)]
    assert any(line.startswith(expected) for line in lines), lines


def test_all_errors_reported_at_once():
    lines = errors_of({**MINIMAL, "train": {"lr": 0, "epochs": 0, "bogus": 1}})
    assert len(lines) == 3


def test_unknown_key_without_close_match_lists_known_keys():
    (line,) = errors_of(with_section("export", zzz=1))
    assert "export.zzz: unknown key (known: opset, max_abs_logit_diff, max_metric_drop)" in line


def test_load_resolves_data_paths_against_recipe_folder(tmp_path: Path):
    recipe_file = tmp_path / "sub" / "r.yaml"
    recipe_file.parent.mkdir()
    recipe_file.write_text("name: r\ndata:\n  path: data/x.csv\n")
    assert load_recipe(recipe_file).data.path == str(tmp_path / "sub" / "data" / "x.csv")


def test_load_reports_yaml_syntax_error_with_line(tmp_path: Path):
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text("name: r\ndata:\n  path: [unclosed\n")
    with pytest.raises(RecipeError, match=r"r.yaml: line \d+, column \d+: not valid YAML"):
        load_recipe(recipe_file)


@pytest.mark.parametrize(("content", "problem"), [("", "an empty file"), ("- a\n- b\n", "a list")])
def test_load_refuses_non_mapping(tmp_path: Path, content, problem):
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(content)
    with pytest.raises(RecipeError, match=f"a recipe is a mapping of sections \\(got {problem}\\)"):
        load_recipe(recipe_file)


def test_missing_recipe_file(tmp_path: Path):
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_overrides_parse_values_as_yaml_and_create_sections():
    raw = apply_overrides(MINIMAL, ["train.lr=1e-4", "train.use_gpu=true", "seed=7"])
    recipe = validate_recipe(raw)
    assert recipe.train.lr == pytest.approx(1e-4)
    assert recipe.train.use_gpu is True
    assert recipe.seed == 7
    assert "train" not in MINIMAL  # the caller's dict is untouched


def test_override_without_equals_is_an_error():
    with pytest.raises(RecipeError, match="expected KEY.PATH=VALUE"):
        apply_overrides(MINIMAL, ["train.lr"])


def test_metric_auto_follows_the_task():
    assert validate_recipe(MINIMAL).metric == "macro_f1"
    ner = validate_recipe({**MINIMAL, "task": {"type": "token_classification"}})
    assert ner.metric == "f1"


def test_precision_auto_is_fp32_on_cpu_and_bf16_on_gpu():
    assert validate_recipe(MINIMAL).train.resolved_precision == "fp32"
    gpu = validate_recipe({**MINIMAL, "train": {"use_gpu": True}})
    assert gpu.train.resolved_precision == "bf16"


def test_deepspeed_json_path_resolves_against_recipe_folder(tmp_path: Path):
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text("name: r\ndata: {path: d.csv}\ntrain: {deepspeed_config: ds.json}\n")
    assert load_recipe(recipe_file).train.deepspeed_config == str(tmp_path / "ds.json")


def test_hash_changes_with_content_and_sections_hash_independently():
    base = validate_recipe(MINIMAL)
    changed = validate_recipe({**MINIMAL, "train": {"lr": 1e-3}})
    assert base.hash != changed.hash
    assert base.section_hash("data") == changed.section_hash("data")
    assert base.section_hash("train") != changed.section_hash("train")


def test_toolbox_sections_validate_and_default():
    recipe = validate_recipe(
        {
            **MINIMAL,
            "model": {"num_layers": 2, "hidden_dropout": 0.2},
            "train": {"label_smoothing": 0.1, "adversarial": {"method": "pgd"}},
            "augment": {},
            "distill": {"teacher": "artifacts/big/train"},
        }
    )
    assert recipe.model.architecture() == {
        "num_layers": 2,
        "hidden_dropout": 0.2,
        "attention_dropout": None,
        "classifier_dropout": None,
    }
    assert recipe.train.adversarial.steps == 3
    assert recipe.augment_operations == ("synonym", "insert", "swap", "delete", "typo")
    assert recipe.distill.alpha == 0.5 and recipe.distill.temperature == 2.0
    assert validate_recipe(MINIMAL).augment_operations == ()
    off = validate_recipe({**MINIMAL, "augment": {"multiplier": 1}})
    assert off.augment_operations == ()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {**MINIMAL, "train": {"zero_stage": 3, "adversarial": {"method": "fgm"}}},
            "train: adversarial training takes extra gradients",
        ),
        (
            {**MINIMAL, "train": {"zero_stage": 3, "l1": 0.001}},
            "train: l1 needs the whole trainable parameters",
        ),
        (
            {
                **MINIMAL,
                "task": {"type": "token_classification"},
                "augment": {"operations": ["swap", "typo"]},
            },
            "augment.operations: swap not label-preserving for token_classification "
            "(use mention, synonym, typo)",
        ),
        (
            {**MINIMAL, "augment": {"operations": ["mention"]}},
            "augment.operations: mention not label-preserving for sequence_classification",
        ),
        (
            {**MINIMAL, "train": {"label_smoothing": 1}},
            "train.label_smoothing: must be < 1 (got 1)",
        ),
        ({**MINIMAL, "distill": {"alpha": 0.5}}, "distill.teacher: required"),
        (
            {**MINIMAL, "train": {"adversarial": {"method": "vat"}}},
            "train.adversarial.method: must be one of 'none', 'fgm' or 'pgd'",
        ),
        ({**MINIMAL, "model": {"num_layers": 0}}, "model.num_layers: must be >= 1 (got 0)"),
    ],
)
def test_toolbox_errors_name_the_key(raw, expected):
    assert any(expected in line for line in errors_of(raw)), errors_of(raw)


def test_distill_teacher_path_resolves_against_the_recipe(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("name: s\ndata: {path: d.csv}\ndistill: {teacher: ../big/train}\n")
    assert load_recipe(path).distill.teacher == str(tmp_path.parent / "big" / "train")


def test_the_recipe_hash_covers_what_differs_from_the_defaults():
    """A key written out at its default, or added to Fulcrum later with a default, leaves
    the hash (and so the runs and artifacts it names) as it was; anything else changes it."""
    import hashlib
    import json

    recipe = validate_recipe(MINIMAL)
    written = {"name": "demo", "data": {"path": recipe.data.path}}
    canonical = json.dumps(written, sort_keys=True, separators=(",", ":"))
    assert recipe.hash == hashlib.sha256(canonical.encode()).hexdigest()
    spelled_out = {
        **MINIMAL,
        "seed": 0,
        "train": {"epochs": None, "workers": 2, "class_weights": None},
        "serve": {"max_body_bytes": 1_000_000, "autoscaling": {"min_replicas": 1}},
    }
    assert validate_recipe(spelled_out).hash == recipe.hash
    for changed in (
        {"tune": {"space": {"peft.r": {"choice": [4, 8]}}}},
        {"compress": {}},  # present at all: the compress stage runs
        {"serve": {"max_body_bytes": 10}},
        {"serve": {"autoscaling": {"downscale_delay_s": 5}}},
        {"train": {"class_weights": "none"}},
    ):
        assert validate_recipe({**MINIMAL, **changed}).hash != recipe.hash, changed
    assert recipe.to_dict()["serve"]["max_body_bytes"] == 1_000_000  # defaults still dumped
