"""Text pairs through Ray Train, the export gate and ONNX Runtime: a ranking group column,
ranking metrics measured alike on the workers and the driver, and the exported model
answering (text, text_pair) tuples as the trained one does."""

import json

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


def test_a_pair_is_explained_word_by_word_on_both_sides_as_the_model_reads_it(pairs):
    import torch

    from fulcrum.explain.explainer import ExplainError, explain
    from fulcrum.models.classifier import load_tokenizer
    from fulcrum.train.merge import load_merged

    _, artifact, export_dir = pairs
    pair = ("do you have pear", "we sell fruit today")
    words = [(0, "do"), (0, "you"), (0, "have"), (0, "pear")]
    words += [(1, "we"), (1, "sell"), (1, "fruit"), (1, "today")]
    merged = load_merged(artifact.path, "text_pair_classification")
    encoded = load_tokenizer(artifact.path / "tokenizer")(*pair, return_tensors="pt")
    with torch.no_grad():
        trained = torch.softmax(merged(**encoded).logits, -1).numpy()[0]
    served = OnnxClassifier(export_dir).predict([pair])[0]["probabilities"]
    for folder, method, probability in (
        (artifact.path, "integrated_gradients", float(trained.max())),
        (export_dir, "occlusion", max(served.values())),
    ):
        ((explanation,),) = explain(folder, [pair], method=method, steps=20)
        assert explanation.text_pair == pair[1]
        assert [(word.side, word.word) for word in explanation.words] == words, method
        assert all(pair[w.side][w.start : w.end] == w.word for w in explanation.words)
        # The explained probability is the model's own on the pair: the segment ids the
        # model was trained with reach it.
        assert explanation.probability == pytest.approx(probability, abs=1e-4), method
    with pytest.raises(ExplainError, match=r"texts\[0\]: a text-pair model explains"):
        explain(export_dir, ["do you have pear"])


QUERY = "do you have pear"
CANDIDATES = [
    "we sell bill today",
    "we sell fruit today",
    "we sell wheel today",
    "we sell apple today",
]


def test_the_rank_endpoint_orders_candidates_as_the_model_does_within_its_limits(pairs, tmp_path):
    import json

    import httpx

    from fulcrum.inference.embedder import cached_embedder, nearest
    from fulcrum.recipe import validate_recipe
    from fulcrum.serve import launch

    recipe, _, export_dir = pairs
    serve = {
        **recipe.serve.model_dump(),
        "max_candidates_per_request": 4,
        "max_texts_per_request": 4,
        "rank_prefilter": 3,  # four candidates are cut to three by embedding; three are not
        "traffic_log": str(tmp_path / "traffic"),
        "traffic_window_s": 0.001,  # a window per batch
    }
    section = validate_recipe({**recipe.to_dict(), "serve": serve}).serve
    model = OnnxClassifier(export_dir)
    # The route is under test, not the model: a tiny random model trained for seconds need
    # not learn a relation between two texts (training says so, and serving would refuse).
    base_url = launch.start({"pairs": export_dir}, section, force=True)
    try:
        client = httpx.Client(base_url=base_url, timeout=30)
        candidates = [{"id": f"c{index}", "text": text} for index, text in enumerate(CANDIDATES)]
        answer = client.post(
            "/v1/models/pairs/rank",
            json={"query": QUERY, "candidates": candidates[:3], "top_k": 2},
        )
        assert answer.status_code == 200, answer.text
        expected = model.rank(QUERY, CANDIDATES[:3])[:2]
        ranking = answer.json()["ranking"]
        assert [item["id"] for item in ranking] == [f"c{index}" for index, _ in expected]
        assert [item["score"] for item in ranking] == pytest.approx(
            [s for _, s in expected], abs=1e-5
        )
        assert answer.json()["scored"] == 3 and answer.json()["version"]

        answer = client.post(
            "/v1/models/pairs/rank", json={"query": QUERY, "candidates": candidates}
        )
        assert answer.status_code == 200, answer.text
        vectors = cached_embedder("builtin:minilm", model.max_length).embed([QUERY, *CANDIDATES])
        kept = nearest(vectors[0], vectors[1:], 3).tolist()
        expected = [
            (kept[i], score) for i, score in model.rank(QUERY, [CANDIDATES[i] for i in kept])
        ]
        assert answer.json()["scored"] == 3
        assert [item["id"] for item in answer.json()["ranking"]] == [f"c{i}" for i, _ in expected]
        description = client.get("/v1/models/pairs").json()
        assert description["rank_prefilter"] == {"keep": 3, "embedder": "builtin:minilm"}

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
            ("explain", {"texts": [QUERY]}, "pairs"),
        ]
        for route, body, field in refusals:
            response = client.post(f"/v1/models/pairs/{route}", json=body)
            assert (response.status_code, response.json()["field"]) == (422, field), (
                body,
                response.text,
            )

        from fulcrum.explain.explainer import explain

        answer = client.post("/v1/models/pairs/explain", json={"pairs": [[QUERY, CANDIDATES[1]]]})
        assert answer.status_code == 200, answer.text
        ((explained,),) = answer.json()["explanations"]
        ((local,),) = explain(export_dir, [(QUERY, CANDIDATES[1])], method="occlusion")
        assert [(w["side"], w["word"]) for w in explained["words"]] == [
            (w.side, w.word) for w in local.words
        ]
        assert [w["score"] for w in explained["words"]] == pytest.approx(
            [w.score for w in local.words], abs=1e-5
        )
    finally:
        launch.stop(section)
    # Every pair the model scored is in the traffic log: 3 + 3 ranked (the prefilter kept
    # 3 of 4) and 1 predicted; explanations run beside the batcher and are not traffic.
    (log,) = (tmp_path / "traffic").glob("pairs-*.jsonl")
    windows = [json.loads(line) for line in log.read_text().splitlines()]
    assert sum(window["texts"] for window in windows) == 7
    assert {label for window in windows for label in window["labels"]} <= {"no", "yes"}
    assert all(window["end"] >= window["start"] > 0 for window in windows)


def test_fulcrum_predict_scores_pairs_from_two_columns_as_in_process(pairs, tmp_path, capsys):
    import csv

    import pyarrow.parquet as pq

    from fulcrum.cli import main

    _, _, export_dir = pairs
    rows = [(QUERY, text) for text in CANDIDATES] + [(QUERY, " ")]
    with open(tmp_path / "pairs.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["question", "candidate"])
        writer.writerows(rows)
    output = tmp_path / "scored"
    command = ["predict", str(export_dir), str(tmp_path / "pairs.csv"), "--output", str(output)]
    flags = ["--text-column", "question", "--text-pair-column", "candidate"]
    assert main([*command, *flags]) == 0
    (part,) = (output / "parts").glob("*.parquet")
    table = pq.read_table(part)
    assert table.column("candidate").to_pylist()[:4] == CANDIDATES  # carried as written
    expected = OnnxClassifier(export_dir).predict(rows[:4])
    scored = table.column("probabilities").to_pylist()[:4]
    assert [row["yes"] for row in scored] == pytest.approx(
        [answer["probabilities"]["yes"] for answer in expected], abs=1e-5
    )
    rejects = [json.loads(line) for line in (output / "rejects.jsonl").read_text().splitlines()]
    assert [reject["reason"] for reject in rejects] == ["empty candidate"]
    # A corpus without the second column is refused, naming it and what it has.
    assert (
        main([*command[:3], "--output", str(tmp_path / "other"), "--text-column", "question"]) == 2
    )
    assert "no column 'text_pair' for the text-pair model's second text" in capsys.readouterr().err
