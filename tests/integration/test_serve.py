"""The Serve application over HTTP on 127.0.0.1: two models behind one gateway, bearer
auth, every limit, Prometheus metrics, and autoscaling from 1 replica to 2 and back."""

import json
import sys
import threading
import time
import urllib.request
from pathlib import Path

import httpx
import pytest

from fulcrum.artifacts import open_artifact
from fulcrum.inference import OnnxClassifier
from fulcrum.serve import launch

pytestmark = pytest.mark.integration

TOKEN = "s3cret-token-for-tests"
TEXTS = ["my apple and pear", "the car engine", "tax invoice please"]


@pytest.fixture(scope="module")
def served(pipeline, compressed, s3_bucket, tmp_path_factory):
    """The export artifact as `tiny` and its fp32 compressed variant as `tiny-fp32`, with
    auth on and small limits, so every refusal is cheap to provoke. The variant is served
    from S3 (a local S3 server), so its replica fetches it from there."""
    from fulcrum.recipe import validate_recipe
    from fulcrum.storage import join, publish

    recipe, _, export_dir = pipeline
    _, compress_dir = compressed
    token_file = tmp_path_factory.mktemp("secrets") / "token"
    token_file.write_text(TOKEN + "\n")
    serve = {
        **recipe.serve.model_dump(),
        "max_chars_per_text": 200,
        "max_texts_per_request": 8,
        "max_body_bytes": 4000,
        "max_explain_texts": 2,
        "max_explain_in_flight": 1,
        "max_explain_words": 10,  # the tiny model reads 14 words at most (max_length 16)
        "auth_token_file": str(token_file),
    }
    recipe = validate_recipe({**recipe.to_dict(), "serve": serve})
    variant_uri = join(s3_bucket, "serve/tiny-fp32")
    publish(compress_dir / "variants" / "fp32", variant_uri)
    models = {"tiny": export_dir, "tiny-fp32": variant_uri}
    base_url = launch.start(models, recipe.serve)
    client = httpx.Client(
        base_url=base_url, headers={"authorization": f"Bearer {TOKEN}"}, timeout=30
    )
    yield recipe, models, base_url, client
    client.close()
    launch.stop(recipe.serve)


def test_each_model_answers_at_its_own_route_like_it_does_in_process(served):
    _, models, _, client = served
    for name, artifact in models.items():
        answer = client.post(f"/v1/models/{name}/predict", json={"texts": TEXTS})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        local = OnnxClassifier(artifact).predict(TEXTS)
        assert body["model"] == name
        assert body["version"] == open_artifact(artifact).manifest.version
        assert [p["label"] for p in body["predictions"]] == [p["label"] for p in local]
        for prediction, expected in zip(body["predictions"], local):
            assert prediction["score"] == pytest.approx(expected["score"], abs=1e-5)
            assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def test_models_are_listed_with_version_metrics_and_lineage(served):
    _, models, _, client = served
    listed = client.get("/v1/models").json()["models"]
    assert [m["name"] for m in listed] == ["tiny", "tiny-fp32"]
    tiny, variant = listed
    assert tiny["labels"] == ["apple", "car", "tax"] and tiny["task"] == "sequence_classification"
    assert [step["kind"] for step in tiny["lineage"]] == ["export", "train"]
    assert [step["kind"] for step in variant["lineage"]] == ["export", "train"]
    assert variant["variant"] == "fp32" and tiny["variant"] is None
    assert tiny["lineage"][1]["test"]["accuracy"] == pytest.approx(
        open_artifact(tiny["lineage"][1]["path"]).metrics["test"]["accuracy"]
    )
    # The export stage is the compress stage's fp32 variant: the same bytes, the same version.
    assert variant["version"] == tiny["version"]
    assert client.get("/v1/models/tiny-fp32").json() == variant


def test_every_bad_request_gets_a_4xx_naming_the_field_and_serving_goes_on(served):
    recipe, _, base_url, client = served
    url = "/v1/models/tiny/predict"
    bad_bodies = [
        ({"texts": []}, 422, "texts"),
        ({"texts": ["ok", 3]}, 422, "texts[1]"),
        ({"texts": ["ok", "  "]}, 422, "texts[1]"),
        ({"texts": "not a list"}, 422, "texts"),
        ({"text": ["ok"]}, 422, "texts"),  # "texts: required; text: unknown field"
        ({}, 422, "texts"),
        ([1, 2], 422, "body"),
        ({"texts": ["x" * 201]}, 422, "texts[0]"),
        ({"texts": ["x"] * 9}, 422, "texts"),
        ({"texts": ["x" * 150] * 30}, 413, "body"),
    ]
    for body, status, field in bad_bodies:
        response = client.post(url, json=body)
        assert (response.status_code, response.json()["field"]) == (status, field), body
        assert field.split("[")[0] in response.json()["error"], response.json()
    raw = [
        (b"{oops", "application/json", 400, "body", "not valid JSON"),
        (b"[" * 3000, "application/json", 400, "body", ""),
        (b"\xff\xfe", "application/json", 400, "body", "not valid JSON"),
        (b"texts=a", "text/plain", 415, "content-type", "application/json"),
    ]
    for content, content_type, status, field, words in raw:
        response = client.post(url, content=content, headers={"content-type": content_type})
        assert (response.status_code, response.json()["field"]) == (status, field), content[:10]
        assert words in response.json()["error"]
    unknown = client.post("/v1/models/nope/predict", json={"texts": ["a"]})
    assert unknown.status_code == 404 and "served: tiny, tiny-fp32" in unknown.json()["error"]
    assert client.get("/v1/nothing-here").status_code == 404

    anonymous = httpx.post(f"{base_url}{url}", json={"texts": ["car"]}, timeout=30)
    wrong = httpx.post(
        f"{base_url}{url}", json={"texts": ["car"]}, headers={"authorization": "Bearer x"}
    )
    for refused in (anonymous, wrong):
        assert refused.status_code == 401 and refused.json()["field"] == "authorization"
        assert refused.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{base_url}/v1/models").status_code == 401
    # Probes stay open: an orchestrator has no token.
    assert httpx.get(f"{base_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{base_url}/readyz", timeout=30)
    assert ready.status_code == 200
    assert ready.json()["models"] == {"tiny": "ready", "tiny-fp32": "ready"}

    # Still serving after all of that.
    assert client.post(url, json={"texts": ["car"]}).status_code == 200


def test_explanations_come_from_the_served_model_and_their_cost_is_bounded(served):
    from fulcrum.explain.explainer import explain

    _, models, base_url, client = served
    texts = ["my apple and pear", "the car engine"]
    answer = client.post("/v1/models/tiny/explain", json={"texts": texts})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    offline = explain(models["tiny"], texts)
    for served_list, local_list, text in zip(body["explanations"], offline, texts):
        (served_one,), (local,) = served_list, local_list
        assert served_one["method"] == "occlusion" and served_one["target"] == local.target
        assert [w["word"] for w in served_one["words"]] == text.split()
        for word, expected in zip(served_one["words"], local.words):
            assert text[word["start"] : word["end"]] == word["word"]
            assert word["score"] == pytest.approx(expected.score, abs=1e-5)
    too_many = client.post("/v1/models/tiny/explain", json={"texts": ["a", "b", "c"]})
    assert too_many.status_code == 422 and "at most 2" in too_many.json()["error"]
    too_long = client.post("/v1/models/tiny/explain", json={"texts": ["a", "b " * 12]})
    assert (too_long.status_code, too_long.json()["field"]) == (422, "texts[1]"), too_long.text
    assert "12 words, over the limit of 10" in too_long.json()["error"]

    # One explanation at a time per gateway (max_explain_in_flight 1): requests that find
    # it busy are refused at once with 429 rather than queued into timeouts (how many find
    # it busy depends on timing; tests/unit/test_serve_limits.py pins the rule itself).
    long_texts = ["apple pear car tax apple pear car tax apple pear"] * 2
    statuses, headers = [], []

    def ask() -> None:
        response = client.post("/v1/models/tiny/explain", json={"texts": long_texts})
        statuses.append(response.status_code)
        headers.append(response.headers.get("retry-after"))

    workers = [threading.Thread(target=ask) for _ in range(12)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert 200 in statuses and set(statuses) <= {200, 429}, statuses
    assert all(h == "1" for s, h in zip(statuses, headers) if s == 429)
    assert client.post("/v1/models/tiny/explain", json={"texts": texts}).status_code == 200


def test_chinese_through_the_gateway_is_utf8_json(served):
    """The served English model reads Chinese as characters: what matters here is the
    bytes, so predictions and explanation offsets round-trip through HTTP unchanged."""
    _, models, _, client = served
    texts = ["我的银行卡被偷了", "怎么挂失？"]
    body = json.dumps({"texts": texts}, ensure_ascii=False).encode("utf-8")
    headers = {"content-type": "application/json; charset=utf-8"}
    answer = client.post("/v1/models/tiny/predict", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    local = OnnxClassifier(models["tiny"]).predict(texts)
    assert [p["label"] for p in answer.json()["predictions"]] == [p["label"] for p in local]

    explained = client.post("/v1/models/tiny/explain", json={"texts": ["怎么挂失？"]})
    assert explained.status_code == 200, explained.text
    # JSON is UTF-8 by definition: the characters come back as themselves, not \\u escapes
    assert "怎么挂失".encode() in explained.content
    ((explanation,),) = explained.json()["explanations"]
    assert [w["word"] for w in explanation["words"]] == list("怎么挂失？")
    assert all("怎么挂失？"[w["start"] : w["end"]] == w["word"] for w in explanation["words"])


def test_openapi_schema_describes_the_routes(served):
    _, _, base_url, _ = served
    schema = httpx.get(f"{base_url}/openapi.json").json()
    predict = schema["paths"]["/v1/models/{name}/predict"]["post"]
    texts, pairs = predict["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    assert texts["required"] == ["texts"] and texts["properties"]["texts"]["minItems"] == 1
    assert pairs["required"] == ["pairs"]  # what a text-pair model takes
    assert {"200", "401", "404", "413", "415", "422", "503"} <= set(predict["responses"])
    assert {"/v1/models", "/v1/models/{name}", "/healthz", "/readyz"} <= set(schema["paths"])
    assert "requestBody" in schema["paths"]["/v1/models/{name}/rank"]["post"]
    explain = schema["paths"]["/v1/models/{name}/explain"]["post"]
    assert "429" in explain["responses"] and "requestBody" in explain


def test_prometheus_metrics_count_requests_and_batches_per_model(served, ray_cluster):
    import ray

    _, _, _, client = served
    for _ in range(3):
        assert client.post("/v1/models/tiny-fp32/predict", json={"texts": TEXTS}).status_code == 200
    # A refused request is counted too, by its status (this test's own, not an earlier one's).
    assert client.post("/v1/models/tiny/predict", json={"texts": 5}).status_code == 422
    port = next(node["MetricsExportPort"] for node in ray.nodes() if node["Alive"])
    deadline = time.time() + 60
    while True:  # Ray exports application metrics every few seconds
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
        lines = [line for line in text.splitlines() if line.startswith("ray_fulcrum_")]
        ok = [
            line
            for line in lines
            if line.startswith("ray_fulcrum_requests_total")
            and 'model="tiny-fp32"' in line
            and 'status="200"' in line
        ]
        batches = [
            line
            for line in lines
            if line.startswith("ray_fulcrum_batch_size_count") and 'model="tiny-fp32"' in line
        ]
        refused = [line for line in lines if 'status="422"' in line and 'model="tiny"' in line]
        if ok and batches and refused or time.time() > deadline:
            break
        time.sleep(1)
    assert ok and float(ok[0].rsplit(" ", 1)[1]) >= 3, lines
    assert batches and float(batches[0].rsplit(" ", 1)[1]) >= 1, lines
    assert any(
        line.startswith("ray_fulcrum_request_latency_ms_bucket") and 'model="tiny-fp32"' in line
        for line in lines
    )
    assert refused, lines


def test_serve_config_cli_writes_a_file_ray_accepts(pipeline, compressed, tmp_path):
    import subprocess

    import yaml
    from ray.serve.schema import ServeDeploySchema

    from fulcrum.serve.config import AppArgs

    _, _, export_dir = pipeline
    _, compress_dir = compressed
    target = tmp_path / "serve.yaml"
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "fulcrum"),
            "serve",
            "config",
            str(export_dir),
            f"int8={compress_dir / 'variants' / 'fp32'}",
            "-o",
            str(target),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(target.read_text())
    ServeDeploySchema.model_validate(config)
    args = AppArgs.model_validate(config["applications"][0]["args"])
    assert [(m.name, m.artifact) for m in args.models] == [
        ("tiny", str(export_dir)),
        ("int8", str(compress_dir / "variants" / "fp32")),
    ]


def test_replicas_scale_up_under_load_and_back_down_after(pipeline, tmp_path):
    from ray import serve

    from fulcrum.recipe import validate_recipe
    from fulcrum.serve.app import deployment_name

    recipe, _, export_dir = pipeline
    section = {
        **recipe.serve.model_dump(),
        "app_name": "scaling",
        "route_prefix": "/scaling",  # beside the module's application, still up
        "max_batch_size": 2,
        "batch_wait_timeout_s": 0.05,
        "autoscaling": {
            "min_replicas": 1,
            "max_replicas": 2,
            "target_ongoing_requests": 1,
            "upscale_delay_s": 0.5,
            "downscale_delay_s": 2,
            "look_back_period_s": 2,
        },
    }
    recipe = validate_recipe({**recipe.to_dict(), "serve": section})
    base_url = launch.start({"tiny": export_dir}, recipe.serve)
    deployment = deployment_name("tiny")

    def replicas() -> int:
        status = serve.status().applications["scaling"].deployments[deployment]
        return status.replica_states.get("RUNNING", 0)

    stop = threading.Event()
    answered = []

    def load() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                response = client.post(f"{base_url}/v1/models/tiny/predict", json={"texts": TEXTS})
                answered.append(response.status_code)

    timeline = [(0.0, replicas())]
    started = time.time()
    workers = [threading.Thread(target=load) for _ in range(6)]
    try:
        for worker in workers:
            worker.start()
        while time.time() - started < 60 and timeline[-1][1] < 2:
            time.sleep(0.5)
            timeline.append((time.time() - started, replicas()))
        stop.set()
        for worker in workers:
            worker.join()
        loaded_until = time.time() - started
        while time.time() - started < loaded_until + 60 and timeline[-1][1] > 1:
            time.sleep(0.5)
            timeline.append((time.time() - started, replicas()))
    finally:
        stop.set()
        launch.stop(recipe.serve)
    print("replicas over time (s, count):", timeline)
    counts = [count for _, count in timeline]
    assert counts[0] == 1
    assert 2 in counts, timeline
    assert counts[-1] == 1, timeline
    assert counts.index(2) < len(counts) - 1 and answered and set(answered) == {200}
