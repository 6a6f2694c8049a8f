"""Out-of-scope detection through the real stages: trained with an `oos` class, calibrated
on validation (where a label training never saw also counts as out of scope), kept in the
training and export manifests, recalibrated for the INT8 variant, answered by the model; and
the assistant built on it, served over HTTP: template, knowledge base, hand-over."""

import json
import random

import httpx
import numpy as np
import pytest

from fulcrum.artifacts import open_artifact
from fulcrum.compress.export import export
from fulcrum.compress.stage import compress, variant_dir
from fulcrum.inference import OnnxClassifier
from fulcrum.recipe import validate_recipe

pytestmark = pytest.mark.integration

WORDS = {
    "apple": ["apple", "pear", "fruit"],
    "car": ["car", "wheel", "engine"],
    "tax": ["tax", "invoice", "bill"],
    "oos": ["weather", "music", "song"],
    "boat": ["boat", "sail", "river"],  # in validation and test only: never trained
}
FILLER = ["the", "a", "my", "is", "was", "today", "please", "very", "new", "old"]
KNOWLEDGE_BASE = [
    {"question": "What will the weather be like tomorrow?", "answer": "See the forecast page."},
    {"question": "Can you recommend some music?", "answer": "Our playlist is on the blog."},
    {"answer": "The shop opens at nine and closes at five."},
]


def _rows(rng: random.Random, labels: list[str], per_label: int) -> list[str]:
    lines = []
    for label in labels:
        for _ in range(per_label):
            tokens = rng.sample(FILLER, 3) + [rng.choice(WORDS[label]), rng.choice(WORDS[label])]
            rng.shuffle(tokens)
            lines.append(f"{' '.join(tokens)},{label}")
    return lines


def write_support_data(folder) -> dict[str, str]:
    rng = random.Random(7)
    files = {}
    for split, labels, per_label in (
        ("train", ["apple", "car", "tax", "oos"], 40),
        ("validation", ["apple", "car", "tax", "oos", "boat"], 8),
        ("test", ["apple", "car", "tax", "oos", "boat"], 8),
    ):
        path = folder / f"{split}.csv"
        path.write_text("\n".join(["text,label", *_rows(rng, labels, per_label)]) + "\n")
        files[split] = str(path)
    return files


@pytest.fixture(scope="module")
def detected(ray_cluster, tiny_recipe_factory, tmp_path_factory):
    from fulcrum.train.stage import train

    folder = tmp_path_factory.mktemp("support")
    base = tiny_recipe_factory(folder / "artifacts", name="support")
    (folder / "answers.yaml").write_text(
        "apple: 'Hello {name}, our fruit desk will call you.'\ntax: Invoices are in the app.\n"
    )
    (folder / "kb.jsonl").write_text("\n".join(json.dumps(row) for row in KNOWLEDGE_BASE) + "\n")
    recipe = validate_recipe(
        {
            **base.to_dict(),
            "data": write_support_data(folder),
            "assistant": {
                "answers": str(folder / "answers.yaml"),
                "knowledge_base": str(folder / "kb.jsonl"),
                "similarity_floor": 0.5,
                "top_k": 2,
            },
            "serve": {
                **base.serve.model_dump(),
                "app_name": "assistant",
                "route_prefix": "/assistant",
            },
            "train": {**base.to_dict()["train"], "epochs": 6},
            "out_of_scope": {"in_scope_recall": 0.9},
            "compress": {"variants": ["dynamic_int8"], "latency_texts": 8},
        }
    )
    train_dir = train(recipe)
    return recipe, train_dir, export(recipe, train_dir), compress(recipe, train_dir)


def test_the_detector_is_calibrated_in_training_and_measured_on_both_splits(detected):
    _, train_dir, _, _ = detected
    artifact = open_artifact(train_dir, kind="train")
    assert artifact.labels == ["apple", "car", "oos", "tax"]  # oos trained as a class
    assert artifact.manifest.split_sizes == {"train": 160, "validation": 32, "test": 32}
    detector = artifact.manifest.out_of_scope
    assert detector["label"] == "oos" and detector["score"] in ("max_probability", "energy")
    report = artifact.metrics["out_of_scope"]
    assert report["detector"] == detector
    for split in ("validation", "test"):
        measured = report[split]
        # 8 `oos` rows and 8 `boat` rows (a label training never saw) per split.
        assert measured["out_of_scope_examples"] == 16 and measured["in_scope_examples"] == 24
        assert 0.0 <= measured["auroc"] <= 1.0
        # The argmax alone flags through the trained class only, so the floor adds to it.
        alone = report["without_detection"][split]["out_of_scope_recall"]
        assert alone <= measured["out_of_scope_recall"]
    # Calibrated on validation to keep 90% of the in-scope texts above the floor: of 24, at
    # most 3 more go to the fallback than the class sends there, and the floor catches what
    # the class misses.
    validation, by_class = report["validation"], report["without_detection"]["validation"]
    assert detector["threshold"] is not None and "keeps 90%" in detector["chosen_by"]
    assert validation["in_scope_flagged"] <= by_class["in_scope_flagged"] + 3 / 24
    assert validation["out_of_scope_recall"] >= 0.5


def test_export_and_int8_each_carry_a_detector_calibrated_on_their_own_scores(detected):
    _, train_dir, export_dir, compress_dir = detected
    trained = open_artifact(train_dir, kind="train").manifest.out_of_scope
    fp32 = open_artifact(export_dir, kind="export")
    int8 = open_artifact(variant_dir(compress_dir, "dynamic-int8"), kind="export")
    for artifact in (fp32, int8):
        detector = artifact.manifest.out_of_scope
        assert detector["label"] == "oos"
        assert artifact.metrics["out_of_scope"]["detector"] == detector
        measured = artifact.metrics["out_of_scope"]
        by_class = measured["without_detection"]["validation"]["in_scope_flagged"]
        assert measured["validation"]["in_scope_flagged"] <= by_class + 3 / 24
        assert measured["validation"]["out_of_scope_recall"] >= 0.5
    # fp32 ONNX matches PyTorch closely, so it lands on (nearly) the training threshold.
    if trained["threshold"] is not None and trained["score"] == fp32.manifest.out_of_scope["score"]:
        assert fp32.manifest.out_of_scope["threshold"] == pytest.approx(
            trained["threshold"], rel=0.05, abs=1e-3
        )


def test_answers_say_out_of_scope_with_the_score_that_decided(detected):
    _, _, export_dir, compress_dir = detected
    texts = ["the music and the weather", "the pear and the apple", "a very old invoice tax"]
    for folder in (export_dir, variant_dir(compress_dir, "dynamic-int8")):
        model = OnnxClassifier(folder)
        answers = model.predict(texts)
        assert [answer["out_of_scope"] for answer in answers] == [True, False, False]
        assert [answer["label"] for answer in answers[1:]] == ["apple", "tax"]
        flagged, scores = model.out_of_scope.decide(model.logits(texts), model.labels)
        assert np.allclose([a["in_scope_score"] for a in answers], scores)
        assert flagged.tolist() == [True, False, False]


def test_fulcrum_predict_writes_the_decision_beside_each_label(detected, tmp_path, capsys):
    import pyarrow.parquet as pq

    from fulcrum.cli import main

    _, _, export_dir, _ = detected
    corpus = tmp_path / "messages.csv"
    texts = ["the music and the weather", "the pear and the apple", "a very old invoice tax"]
    corpus.write_text("text\n" + "\n".join(texts) + "\n")
    output = tmp_path / "scored"
    assert main(["predict", str(export_dir), str(corpus), "--output", str(output)]) == 0
    (part,) = (output / "parts").glob("*.parquet")
    table = pq.read_table(part)
    expected = OnnxClassifier(export_dir).predict(texts)
    assert table.column("out_of_scope").to_pylist() == [a["out_of_scope"] for a in expected]
    assert np.allclose(
        table.column("in_scope_score").to_pylist(), [a["in_scope_score"] for a in expected]
    )


@pytest.fixture(scope="module")
def assistant(detected):
    from fulcrum.assistant.build import build_assistant
    from fulcrum.serve import launch

    recipe, train_dir, export_dir, _ = detected
    trained = open_artifact(train_dir, kind="train")
    built = build_assistant(recipe, trained.labels, trained.manifest.base_model, train_dir)
    base_url = launch.start({"support": export_dir}, recipe.serve, assistants={"support": built})
    with httpx.Client(base_url=base_url, timeout=30) as client:
        yield built, client
    launch.stop(recipe.serve)


def test_the_assistant_artifact_holds_the_embedded_knowledge_base(assistant):
    built, _ = assistant
    artifact = open_artifact(built, kind="assistant")
    assert artifact.manifest.embedder == "builtin:minilm" and artifact.manifest.dimension == 384
    assert artifact.metrics["knowledge_base_rows"] == 3 and artifact.metrics["answers"] == 2
    assert artifact.metrics["intents_without_answer"] == ["car", "oos"]
    vectors = np.load(built / "knowledge_base.npy")
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_a_templated_intent_is_answered_with_its_slots_filled(assistant):
    _, client = assistant
    response = client.post(
        "/v1/assistants/support/reply",
        json={"text": "the pear and the apple", "slots": {"name": "Ann"}},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["chosen_by"] == "template" and body["intent"] == "apple"
    assert body["answer"] == "Hello Ann, our fruit desk will call you."
    assert body["out_of_scope"] is False and body["missing_slots"] == []
    missing = client.post("/v1/assistants/support/reply", json={"text": "the pear and the apple"})
    assert missing.json()["missing_slots"] == ["name"]
    assert "{name}" in missing.json()["answer"]


def test_out_of_scope_questions_get_the_knowledge_base_or_a_person(assistant):
    _, client = assistant
    found = client.post(
        "/v1/assistants/support/reply", json={"text": "the music and the weather tomorrow"}
    ).json()
    assert found["out_of_scope"] is True and found["intent"] is None
    assert found["chosen_by"] == "knowledge_base"
    assert found["answer"] == "See the forecast page."
    assert len(found["passages"]) == 2 and found["passages"][0]["score"] >= 0.5
    # Out of scope, and like nothing in the knowledge base: a person takes it.
    handed = client.post(
        "/v1/assistants/support/reply", json={"text": "weather music song zebra quantum"}
    ).json()
    assert handed["out_of_scope"] is True and handed["chosen_by"] == "handover", handed
    assert handed["answer"].startswith("I can't answer that myself")
    assert handed["passages"][0]["score"] < 0.5


def test_the_reply_route_refuses_what_it_cannot_answer(assistant):
    _, client = assistant
    empty = client.post("/v1/assistants/support/reply", json={"text": "  "})
    assert empty.status_code == 422 and empty.json()["field"] == "text"
    extra = client.post("/v1/assistants/support/reply", json={"text": "hi", "texts": ["x"]})
    assert extra.status_code == 422 and "expected only 'text' and 'slots'" in extra.json()["error"]
    unknown = client.post("/v1/assistants/nobody/reply", json={"text": "hi"})
    assert unknown.status_code == 404
    info = client.get("/v1/models/support").json()
    assert info["assistant"]["knowledge_base_rows"] == 3
    assert info["out_of_scope"]["label"] == "oos"
