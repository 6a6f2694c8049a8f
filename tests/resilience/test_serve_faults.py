"""The Serve application under abuse and failure: 10,000 malformed requests from a fuzzer
get 4xx answers, never a 5xx, with the server's memory flat; and a model replica killed
while a load generator runs is replaced, every request meanwhile getting a correct answer
or an error response, none left hanging."""

import asyncio
import os
import signal
import threading
import time
from collections import Counter

import httpx
import psutil
import pytest

from fulcrum.inference import OnnxClassifier
from fulcrum.serve import launch

from .fuzz import cases

pytestmark = pytest.mark.integration

TOKEN = "resilience-token"
TEXTS = ["my apple and pear", "the car engine", "tax invoice please", "fruit and a wheel"]
FUZZ_REQUESTS = 10_000


@pytest.fixture(scope="module")
def served(pipeline, tmp_path_factory):
    from fulcrum.recipe import validate_recipe

    recipe, _, export_dir = pipeline
    token_file = tmp_path_factory.mktemp("secrets") / "token"
    token_file.write_text(TOKEN)
    serve = {
        **recipe.serve.model_dump(),
        "app_name": "resilience",
        "max_chars_per_text": 200,
        "max_texts_per_request": 8,
        "max_body_bytes": 4000,
        "auth_token_file": str(token_file),
        "colocate": False,  # the model in its own deployment: its replica dies alone
    }
    recipe = validate_recipe({**recipe.to_dict(), "serve": serve})
    base_url = launch.start({"tiny": export_dir}, recipe.serve)
    yield base_url, export_dir
    launch.stop(recipe.serve)


def serve_processes() -> dict[str, int]:
    """The proxy's and every replica's pid, by actor class (ServeReplica:app:deployment)."""
    from ray.util.state import list_actors

    actors = list_actors(filters=[("state", "=", "ALIVE")], limit=1000)
    return {
        actor["class_name"]: actor["pid"]
        for actor in actors
        if actor["class_name"].startswith("ServeReplica:resilience:")
        or actor["class_name"] == "ProxyActor"
    }


def rss_mb(pids: dict[str, int]) -> dict[str, float]:
    return {name: psutil.Process(pid).memory_info().rss / 2**20 for name, pid in pids.items()}


async def _send_all(base_url: str, requests, concurrency: int = 16) -> tuple[Counter, list]:
    """Every request over `concurrency` keep-alive connections (aiohttp: the client must
    not be the bottleneck on two cores); their status codes, and what a 5xx said."""
    import aiohttp

    statuses: Counter = Counter()
    failures: list[str] = []
    gate = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(base_url, connector=connector, timeout=timeout) as client:

        async def one(case) -> None:
            async with gate:
                try:
                    async with client.request(
                        case.method,
                        case.path,
                        data=case.body,
                        headers=case.headers,
                        skip_auto_headers=["Content-Type"],
                    ) as response:
                        text = await response.text(errors="replace")
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    statuses["no answer"] += 1
                    failures.append(f"{case.kind}: {type(exc).__name__} {exc}")
                    return
                statuses[response.status] += 1
                if response.status >= 500:
                    failures.append(f"{case.kind} {case.method} {case.path[:80]}: {text[:200]}")

        await asyncio.gather(*(one(case) for case in requests))
    return statuses, failures


def test_ten_thousand_malformed_requests_get_4xx_never_5xx_and_memory_stays_flat(served):
    base_url, export_dir = served
    client = httpx.Client(base_url=base_url, headers={"authorization": f"Bearer {TOKEN}"})
    openapi = client.get("/openapi.json").json()
    assert "/v1/models/{name}/predict" in openapi["paths"]
    generated = list(cases(openapi, ["tiny"], TOKEN, FUZZ_REQUESTS, seed=20261129))
    warm, rest = generated[:1000], generated[1000:]

    started = time.time()
    first, failed_first = asyncio.run(_send_all(base_url, warm))
    processes = serve_processes()
    before = rss_mb(processes)
    second, failed_second = asyncio.run(_send_all(base_url, rest))
    after = rss_mb(processes)
    elapsed = time.time() - started

    failures = failed_first + failed_second
    statuses = first + second
    assert not failures, failures[:10]
    assert sum(statuses.values()) == FUZZ_REQUESTS
    assert all(400 <= status < 500 or status == 200 for status in statuses), statuses
    assert statuses[200] < FUZZ_REQUESTS * 0.1, "the fuzzer should mostly send broken requests"
    assert serve_processes() == processes, "no Serve process crashed or was replaced"
    growth = {name: after[name] - before[name] for name in before}
    assert max(growth.values()) < 64, growth
    # And it still serves the real thing.
    answer = client.post("/v1/models/tiny/predict", json={"texts": TEXTS})
    assert answer.status_code == 200
    expected = [p["label"] for p in OnnxClassifier(export_dir).predict(TEXTS)]
    assert [p["label"] for p in answer.json()["predictions"]] == expected
    print(
        f"\n[resilience] fuzz: {FUZZ_REQUESTS} requests in {elapsed:.0f}s, statuses "
        f"{dict(sorted(statuses.items()))}, RSS growth MB "
        f"{ {name.split(':')[-1]: round(mb, 1) for name, mb in growth.items()} }"
    )


def test_a_killed_replica_is_replaced_and_no_request_hangs_meanwhile(served):
    base_url, export_dir = served
    expected = [p["label"] for p in OnnxClassifier(export_dir).predict(TEXTS)]
    replica = "ServeReplica:resilience:model-tiny"
    victim = serve_processes()[replica]
    outcomes: Counter = Counter()
    wrong: list = []
    answered_after_kill = threading.Event()
    killed_at: list[float] = []
    lock = threading.Lock()

    def load(requests: int) -> None:
        with httpx.Client(
            base_url=base_url, headers={"authorization": f"Bearer {TOKEN}"}, timeout=30
        ) as client:
            for _ in range(requests):
                try:
                    response = client.post("/v1/models/tiny/predict", json={"texts": TEXTS})
                except httpx.TimeoutException:
                    outcome = "hung"
                except httpx.HTTPError:
                    outcome = "connection error"
                else:
                    if response.status_code == 200:
                        labels = [p["label"] for p in response.json()["predictions"]]
                        outcome = "correct" if labels == expected else "wrong"
                        if outcome == "wrong":
                            wrong.append(labels)
                        if killed_at:
                            answered_after_kill.set()
                    else:
                        outcome = f"error {response.status_code}"
                with lock:
                    outcomes[outcome] += 1

    threads = [threading.Thread(target=load, args=(150,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    while sum(outcomes.values()) < 100:
        time.sleep(0.05)
    os.kill(victim, signal.SIGKILL)
    killed_at.append(time.time())
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads), "a load thread hung"

    assert sum(outcomes.values()) == 600
    assert outcomes["hung"] == 0 and outcomes["wrong"] == 0, (outcomes, wrong[:3])
    errors = {key: count for key, count in outcomes.items() if key.startswith("error")}
    assert set(errors) <= {"error 503"}, outcomes  # the gateway's "unavailable, retry"
    assert outcomes["correct"] + sum(errors.values()) + outcomes["connection error"] == 600
    assert outcomes["connection error"] == 0, outcomes
    # Serve replaced the replica, and the new one answers correctly.
    replacement = serve_processes().get(replica)
    assert replacement and replacement != victim
    assert answered_after_kill.is_set() or _answers_correctly(base_url, expected)
    print(
        f"\n[resilience] replica killed under load: {dict(outcomes)}; replica pid {victim} -> "
        f"{replacement}"
    )


def _answers_correctly(base_url: str, expected: list[str], timeout_s: float = 60) -> bool:
    deadline = time.time() + timeout_s
    with httpx.Client(base_url=base_url, headers={"authorization": f"Bearer {TOKEN}"}) as client:
        while time.time() < deadline:
            response = client.post("/v1/models/tiny/predict", json={"texts": TEXTS})
            if response.status_code == 200:
                return [p["label"] for p in response.json()["predictions"]] == expected
            time.sleep(0.5)
    return False
