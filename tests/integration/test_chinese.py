"""Chinese text in every stage, on a tiny random XLM-R with builtin:multilingual's tokenizer:
a character-level BMES tagger trained on Ray Train with DeepSpeed ZeRO-2, exported, answering
entity spans with character offsets into raw text, in process and from Ray Serve over HTTP,
explained per character (HTML in UTF-8). Chinese through the Serve gateway is in
test_serve.py, beside the app it needs."""

import random

import pytest

from fulcrum.artifacts import open_artifact
from fulcrum.inference import OnnxClassifier
from fulcrum.models.registry import resolve_model_dir

from ..conftest import copy_tokenizer

pytestmark = pytest.mark.integration

NAMES = ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊"]
PLACES = ["北京", "上海", "广州", "深圳", "杭州"]
TEMPLATES = ["{name}在{place}工作", "{name}毕业于{place}", "{place}的{name}是经理"]


def write_bmes(path, sentences: int = 240):
    """Resume NER's layout: one `character tag` per line, BMES tags, blank line between."""
    rng = random.Random(0)
    lines = []
    for _ in range(sentences):
        name, place = rng.choice(NAMES), rng.choice(PLACES)
        text = rng.choice(TEMPLATES).format(name=name, place=place)
        tags = ["O"] * len(text)
        for word, kind in ((name, "NAME"), (place, "LOC")):
            start = text.index(word)
            tags[start : start + len(word)] = (
                [f"B-{kind}"] + [f"M-{kind}"] * (len(word) - 2) + [f"E-{kind}"]
            )
        lines += [f"{character} {tag}" for character, tag in zip(text, tags)] + [""]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny_xlmr_dir(tmp_path_factory):
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel

    folder = tmp_path_factory.mktemp("tiny-xlmr")
    torch.manual_seed(0)
    config = XLMRobertaConfig(
        vocab_size=250037,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=130,
        initializer_range=0.1,
    )
    XLMRobertaModel(config).save_pretrained(folder)
    return copy_tokenizer(resolve_model_dir("builtin:multilingual"), folder)


@pytest.fixture(scope="module")
def chinese_tagger(ray_cluster, tiny_recipe_factory, tiny_xlmr_dir, tmp_path_factory):
    from fulcrum.compress.export import export
    from fulcrum.train.stage import train

    folder = tmp_path_factory.mktemp("resume")
    recipe = tiny_recipe_factory(
        folder,
        name="resume",
        task=None,
        data={"path": str(write_bmes(folder / "train.char.bmes"))},
        model={"base": str(tiny_xlmr_dir), "max_length": 24},
        peft={"method": "full"},  # the new characters' embeddings learn too
        train={"epochs": 4, "lr": 5e-3},
    )
    train_dir = train(recipe)
    return recipe, train_dir, export(recipe, train_dir)


def test_bmes_tagger_learns_characters_and_answers_spans_into_raw_text(chinese_tagger):
    recipe, train_dir, export_dir = chinese_tagger
    assert (recipe.task.type, recipe.data.tag_scheme) == ("token_classification", "bmes")
    artifact = open_artifact(train_dir, kind="train")
    assert artifact.labels == ["O", "B-LOC", "I-LOC", "B-NAME", "I-NAME"]
    assert artifact.metrics["validation"]["f1"] > 0.8, artifact.metrics["validation"]

    texts = ["王芳在深圳工作", "张伟 毕业于上海"]  # the second with a space the data never had
    answers = OnnxClassifier(export_dir).predict(texts)
    found = [[(e["entity"], e["text"], e["start"]) for e in a["entities"]] for a in answers]
    assert found == [
        [("NAME", "王芳", 0), ("LOC", "深圳", 3)],
        [("NAME", "张伟", 0), ("LOC", "上海", 6)],
    ]
    for text, answer in zip(texts, answers, strict=True):
        for entity in answer["entities"]:
            assert text[entity["start"] : entity["end"]] == entity["text"]


def spans_of(predictions):
    """Each text's entities without their scores (floats, compared apart)."""
    return [
        [
            {key: value for key, value in entity.items() if key != "score"}
            for entity in p["entities"]
        ]
        for p in predictions
    ]


def test_the_tagger_serves_chinese_spans_over_http(chinese_tagger):
    """Ray Serve on the XLM-R export: the served spans are the in-process ones, in UTF-8."""
    import httpx

    from fulcrum.serve import launch

    recipe, _, export_dir = chinese_tagger
    base_url = launch.start({"resume": export_dir}, recipe.serve)
    try:
        texts = ["李娜在杭州工作", "北京的杨磊是经理"]
        answer = httpx.post(
            f"{base_url}/v1/models/resume/predict", json={"texts": texts}, timeout=30
        )
        assert answer.status_code == 200, answer.text
        served, local = answer.json()["predictions"], OnnxClassifier(export_dir).predict(texts)
        assert spans_of(served) == spans_of(local)
        assert [e["entity"] for p in served for e in p["entities"]] == [
            "NAME",
            "LOC",
            "LOC",
            "NAME",
        ]
        for got, expected in zip(served, local, strict=True):
            for entity, reference in zip(got["entities"], expected["entities"], strict=True):
                assert entity["score"] == pytest.approx(reference["score"], abs=1e-5)
        assert "杭州".encode() in answer.content
    finally:
        launch.stop(recipe.serve)


def test_chinese_entities_are_explained_per_character_in_utf8_html(chinese_tagger, tmp_path):
    from fulcrum.explain.explainer import explain
    from fulcrum.explain.render import html_page

    _, train_dir, _ = chinese_tagger
    text = "李娜在杭州工作"
    (explanations,) = explain(train_dir, [text], steps=16)
    assert [e.target for e in explanations] == ["NAME '李娜'", "LOC '杭州'"]
    assert [w.word for w in explanations[0].words] == list(text)
    page = tmp_path / "why.html"
    page.write_text(html_page(explanations, "为什么"), encoding="utf-8")
    content = page.read_bytes().decode("utf-8")
    assert "<meta charset='utf-8'>" in content and "<title>为什么</title>" in content
    assert content.count("<span title=") == 2 * len(text)
