"""A canary rollout under load: a new version beside the served one takes its share of
the requests, the gateway compares them live, and it is promoted, with every request
answered throughout and each answer naming the version that gave it."""

import threading
import time

import pytest

pytestmark = pytest.mark.integration


def test_a_canary_is_deployed_compared_and_promoted_with_no_request_failing(pipeline, compressed):
    import httpx

    from fulcrum.compress.stage import variant_dir
    from fulcrum.serve import launch
    from fulcrum.serve.config import CanaryArgs

    recipe, _, export_dir = pipeline
    _, compress_dir = compressed
    # Another version of the model: the rollout is under test, not the variant, so its
    # parity gate is not asked for (force).
    new = variant_dir(compress_dir, "dynamic-int8")
    base_url = launch.start({"tiny": export_dir}, recipe.serve)
    answers: list[tuple[float, int, str]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=base_url, timeout=60) as client:
            while not stop.is_set():
                try:
                    response = client.post(
                        "/v1/models/tiny/predict", json={"texts": ["my tax bill"]}
                    )
                    version = response.json().get("version", "") if response.is_success else ""
                    answers.append((time.time(), response.status_code, version))
                except httpx.HTTPError as error:  # a dropped connection is a failure too
                    answers.append((time.time(), 0, type(error).__name__))

    def versions_since(moment: float) -> set[str]:
        return {version for at, status, version in answers if at > moment and status == 200}

    def wait_for(condition, timeout_s: float = 120.0) -> None:
        deadline = time.time() + timeout_s
        while not condition():
            assert time.time() < deadline, f"timed out; last answers {answers[-5:]}"
            time.sleep(0.2)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    try:
        wait_for(lambda: len(answers) >= 20)
        (old,) = versions_since(0)
        canary = {"tiny": CanaryArgs(artifact=str(new), share=0.5, force=True)}
        launch.start({"tiny": export_dir}, recipe.serve, canaries=canary)
        deployed = time.time()
        wait_for(lambda: len(versions_since(deployed)) == 2)
        (fresh,) = versions_since(deployed) - {old}
        described = httpx.get(f"{base_url}/v1/models/tiny", timeout=30).json()
        assert described["version"] == old and described["canary"]["version"] == fresh
        assert described["canary"]["share"] == 0.5
        wait_for(lambda: sum(v == fresh for _, s, v in answers if s == 200) >= 10)
        live = httpx.get(f"{base_url}/v1/models/tiny", timeout=30).json()["live"]
        assert live[fresh]["requests"] >= 1 and live[fresh]["errors"] == 0

        launch.start({"tiny": new}, recipe.serve, force=True)  # promoted: it is the model
        promoted = time.time()
        wait_for(lambda: [v for at, _, v in answers if at > promoted][-20:] == [fresh] * 20)
    finally:
        stop.set()
        worker.join(timeout=60)
        launch.stop(recipe.serve)
    failed = [answer for answer in answers if answer[1] != 200]
    assert failed == [], f"{len(failed)} of {len(answers)} requests failed: {failed[:5]}"
    assert {version for _, _, version in answers} == {old, fresh}
