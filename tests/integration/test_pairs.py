"""Text pairs through Ray Train, the export gate and ONNX Runtime: a ranking group column,
ranking metrics measured alike on the workers and the driver, and the exported model
answering (text, text_pair) tuples as the trained one does."""

import numpy as np
import pytest

from fulcrum.artifacts import open_artifact
from fulcrum.inference import OnnxClassifier

from ..conftest import write_pair_jsonl

pytestmark = pytest.mark.integration

RANKING = ("auc", "group_auc", "mrr", "ndcg_5", "ndcg_10")


@pytest.fixture(scope="module")
def pairs(ray_cluster, tiny_recipe_factory, tmp_path_factory):
    from fulcrum.compress.export import export
    from fulcrum.train.stage import train

    folder = tmp_path_factory.mktemp("pairs")
    recipe = tiny_recipe_factory(
        folder,
        name="pairs",
        task={"type": "text_pair_classification"},
        data={
            "path": str(write_pair_jsonl(folder / "pairs.jsonl", rows=180)),
            "text_column": "question",
            "text_pair_column": "candidate",
            "group_column": "user",
        },
        model={"max_length": 24},
        train={"epochs": 2},
    )
    train_dir = train(recipe)
    return recipe, open_artifact(train_dir, kind="train"), export(recipe, train_dir)


def test_pairs_train_with_ranking_metrics_the_workers_and_the_driver_agree_on(pairs):
    _, artifact, _ = pairs
    metrics = artifact.metrics
    assert artifact.labels == ["no", "yes"]
    for split in ("validation", "test"):
        values = metrics[split]
        assert set(RANKING) <= set(values), split
        assert all(0.0 <= values[name] <= 1.0 for name in RANKING)
        assert values["groups"] == 5  # 30 users of 6 rows: 15% of the rows is 27, 5 users
    # The workers counted whole groups too (batches cut at group ends), so their figures
    # are the driver's on the same merged weights.
    for name in ("accuracy", *RANKING):
        assert metrics["validation"][name] == pytest.approx(
            metrics["training_validation"][name], abs=1e-6
        ), name


def test_the_exported_pair_model_answers_pairs_as_the_trained_one_and_ranks(pairs):
    import torch

    from fulcrum.models.classifier import load_tokenizer
    from fulcrum.train.merge import load_merged

    recipe, artifact, export_dir = pairs
    model = OnnxClassifier(export_dir)
    assert "token_type_ids" in model.input_names  # the pair's segments reach the model
    queries = [
        ("do you have pear", "we sell fruit today"),
        ("do you have car", "we sell bill today"),
    ]
    answers = model.predict(queries)
    merged = load_merged(artifact.path, "text_pair_classification")
    tokenizer = load_tokenizer(artifact.path / "tokenizer")
    encoded = tokenizer(
        [a for a, _ in queries], [b for _, b in queries], padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        expected = torch.softmax(merged(**encoded).logits, -1).numpy()
    measured = np.array(
        [[answer["probabilities"][name] for name in artifact.labels] for answer in answers]
    )
    assert np.abs(measured - expected).max() < 1e-4
    ranked = model.rank("do you have pear", ["we sell bill today", "we sell fruit today"])
    scores = model.logits(
        [("do you have pear", text) for text in ("we sell bill today", "we sell fruit today")]
    )
    best = int(np.argmax(scores[:, 1] - scores[:, 0]))
    assert ranked[0][0] == best and ranked[0][1] >= ranked[1][1]


QUERY = "do you have pear"
CANDIDATES = [
    "we sell bill today",
    "we sell fruit today",
    "we sell wheel today",
    "we sell apple today",
]


def test_the_rank_endpoint_orders_candidates_as_the_model_does_within_its_limits(pairs):
    import httpx

    from fulcrum.recipe import validate_recipe
    from fulcrum.serve import launch

    recipe, _, export_dir = pairs
    serve = {
        **recipe.serve.model_dump(),
        "max_candidates_per_request": 4,
        "max_texts_per_request": 4,
    }
    section = validate_recipe({**recipe.to_dict(), "serve": serve}).serve
    # The route is under test, not the model: a tiny random model trained for seconds need
    # not learn a relation between two texts (training says so, and serving would refuse).
    base_url = launch.start({"pairs": export_dir}, section, force=True)
    try:
        client = httpx.Client(base_url=base_url, timeout=30)
        candidates = [{"id": f"c{index}", "text": text} for index, text in enumerate(CANDIDATES)]
        answer = client.post(
            "/v1/models/pairs/rank", json={"query": QUERY, "candidates": candidates, "top_k": 3}
        )
        assert answer.status_code == 200, answer.text
        expected = OnnxClassifier(export_dir).rank(QUERY, CANDIDATES)[:3]
        ranking = answer.json()["ranking"]
        assert [item["id"] for item in ranking] == [f"c{index}" for index, _ in expected]
        assert [item["score"] for item in ranking] == pytest.approx(
            [s for _, s in expected], abs=1e-5
        )
        assert answer.json()["version"]

        scores = dict(OnnxClassifier(export_dir).rank(QUERY, CANDIDATES))
        one = client.post("/v1/models/pairs/predict", json={"pairs": [[QUERY, CANDIDATES[1]]]})
        assert one.status_code == 200, one.text
        probabilities = one.json()["predictions"][0]["probabilities"]
        assert probabilities["yes"] == pytest.approx(scores[1], abs=1e-5)
        refusals = [
            ("rank", {"query": QUERY, "candidates": candidates + candidates[:1]}, "candidates"),
            (
                "rank",
                {"query": QUERY, "candidates": [{"id": "a", "text": " "}]},
                "candidates[0].text",
            ),
            ("rank", {"query": "", "candidates": candidates}, "query"),
            ("rank", {"query": QUERY, "candidates": [{"id": "a"}]}, "candidates[0].text"),
            ("predict", {"texts": [QUERY]}, "pairs"),
            ("predict", {"pairs": [[QUERY]]}, "pairs[0][1]"),  # the second text is missing
            ("predict", {"pairs": [[QUERY, " "]]}, "pairs[0][1]"),
            ("explain", {"texts": [QUERY]}, "name"),
        ]
        for route, body, field in refusals:
            response = client.post(f"/v1/models/pairs/{route}", json=body)
            assert (response.status_code, response.json()["field"]) == (422, field), (
                body,
                response.text,
            )
    finally:
        launch.stop(section)
