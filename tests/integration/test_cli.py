"""`fulcrum run` end to end in a fresh process, as a user runs it: its own Ray job joins the
session's cluster, its Serve replicas import the installed fulcrum.serve, and answers probes over HTTP."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

FULCRUM = str(Path(sys.executable).parent / "fulcrum")
# What a newcomer reads as a failure; seen in `make demo` before it was kept out.
NOISE = (
    "core_worker.cc",
    "PreemptionWatcher",
    "RayDeprecationWarning",
    "FutureWarning",
    "graceful_shutdown",
    "Progress bars disabled",
    "Token authentication is enabled",
    "RayTrainWorker pid=",
)


def test_fulcrum_run_on_s3_trains_exports_serves_answers_and_compress_follows(
    ray_cluster, tiny_recipe_factory, s3_bucket, tmp_path
):
    """Artifacts and checkpoints on S3 (a local S3 server): what a team without a shared
    filesystem runs. `fulcrum compress` then starts from the S3 URI on a machine with an
    empty cache."""
    import pyarrow.fs

    from fulcrum.storage import join

    output_dir = join(s3_bucket, "cli")
    # Served as a one-model app is by default: the model inside the gateway (one deployment).
    # With an assistant, its file given relative to the recipe, as a user writes it (answers
    # only: the knowledge base's embedding is tested in test_out_of_scope.py).
    (tmp_path / "answers.yaml").write_text("apple: 'Our fruit desk will call you, {name}.'\n")
    raw = tiny_recipe_factory(output_dir).to_dict() | {"assistant": {"answers": "answers.yaml"}}
    recipe_file = tmp_path / "tiny.yaml"
    recipe_file.write_text(yaml.safe_dump(raw))
    result = subprocess.run(
        [FULCRUM, "run", str(recipe_file), "--probe", "apple pear", "--probe", "car wheel"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "FULCRUM_CACHE": str(tmp_path / "cache-a")},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert re.search(
        r"\[train\] step 18/18 \(100%\) epoch 3 loss \d\.\d{4} lr .* samples/s .* tokens/s ETA",
        output,
    )
    assert re.search(
        r"checkpoints in s3://fulcrum/cli/tiny/_ray/tiny-[0-9a-f]{12}\?endpoint", output
    )
    assert re.search(r"validation: accuracy \d\.\d{4}  macro-F1 \d\.\d{4}  examples 18", output)
    assert "[export] parity on 18 validation and 18 test texts" in output
    answers = re.findall(
        r"\[serve\] POST /v1/models/tiny/predict '(.*)' -> (apple|car|tax) \((\d\.\d\d)\)",
        output,
    )
    assert [text for text, _, _ in answers] == ["apple pear", "car wheel"]
    assert "[assistant] " in output and "1 answer template(s), 0 knowledge-base row(s)" in output
    replies = re.findall(
        r"\[serve\] POST /v1/assistants/tiny/reply '(.*)' -> (['\"])(.*)\2 "
        r"\((template|knowledge_base|handover): .*\)",
        output,
    )
    assert [text for text, *_ in replies] == ["apple pear", "car wheel"], output[-2000:]
    by_intent = {text: label for text, label, _ in answers}
    for text, _, answer, chosen_by in replies:
        if by_intent[text] == "apple":  # the one intent with a template
            assert (answer, chosen_by) == ("Our fruit desk will call you, {name}.", "template")
        else:  # no template, no knowledge base: a person
            assert chosen_by == "handover"
    assert "Serve shut down" in output
    # Only Fulcrum's own lines: none of what Ray, its workers and the libraries log.
    for noise in NOISE:
        assert noise not in output, f"{noise!r} reached the terminal"

    # `fulcrum compress` takes the training artifact itself, here by its URI, on a machine
    # that has none of it yet; its outputs go beside it on S3.
    result = subprocess.run(
        [
            FULCRUM,
            "compress",
            join(output_dir, "tiny/train"),
            "--set",
            "compress.latency_texts=8",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "FULCRUM_CACHE": str(tmp_path / "cache-b")},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| dynamic-int8 |" in result.stdout and "Recommended: **" in result.stdout

    filesystem, _ = pyarrow.fs.FileSystem.from_uri(s3_bucket)
    stored = {
        info.path.removeprefix("fulcrum/cli/tiny/")
        for info in filesystem.get_file_info(pyarrow.fs.FileSelector("fulcrum/cli", recursive=True))
        if info.type == pyarrow.fs.FileType.File
    }
    for expected in (
        "train/manifest.json",
        "train/merged/model.safetensors",
        "export/model.onnx",
        "compress/manifest.json",
        "compress/variants/dynamic-int8/model.onnx",
        "assistant/answers.json",
    ):
        assert expected in stored, sorted(stored)
    # Ray's checkpoints went to S3 during training, and were removed once the artifact was.
    assert not [path for path in stored if path.startswith("_ray/") and "checkpoint" in path]


def test_cli_reports_recipe_errors_without_traceback(tmp_path):
    recipe_file = tmp_path / "bad.yaml"
    recipe_file.write_text("name: bad\ndata: {path: x.csv}\ntrain: {lr: -1}\n")
    result = subprocess.run(
        [FULCRUM, "train", str(recipe_file)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "train.lr: must be > 0 (got -1)" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_reports_data_errors_without_traceback(tmp_path):
    (tmp_path / "d.csv").write_text("text,label\nhello,a\n,b\n")
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text("name: r\ndata: {path: d.csv}\n")
    result = subprocess.run(
        [FULCRUM, "train", str(recipe_file)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert (
        "d.csv: 1 unusable row(s)" in result.stderr
        and "row 2: empty text in column 'text'" in result.stderr
    )
    assert "Traceback" not in result.stderr


def test_serve_refuses_a_missing_export_artifact_before_starting_ray(tmp_path):
    (tmp_path / "d.csv").write_text("text,label\nhello,a\nbye,b\n")
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text("name: r\ndata: {path: d.csv}\n")
    result = subprocess.run(
        [FULCRUM, "serve", str(recipe_file), "--output-dir", str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "nowhere/r/export: not an artifact (no manifest.json)" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_stops_on_sigterm_after_the_requests_it_holds_with_exit_code_0(
    pipeline, serve_port, tmp_path
):
    """What Docker, Kubernetes and systemd send: the requests in flight when it arrives are
    answered (or, not yet routed, refused with a status), none cut off, and the process
    ends with 0 and no stack dump."""
    import json
    import signal
    import urllib.error
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    recipe, _, export_dir = pipeline
    raw = recipe.to_dict()
    raw["serve"] = {**raw["serve"], "app_name": "sigterm", "route_prefix": "/sigterm"}
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(yaml.safe_dump(raw))
    process = subprocess.Popen(
        [FULCRUM, "serve", str(recipe_file), "--artifact", str(export_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{serve_port}/sigterm/v1/models/tiny/predict"

    def ask(_) -> int:
        request = urllib.request.Request(
            url,
            data=json.dumps({"texts": ["my car has a new wheel"]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                assert json.loads(response.read())["predictions"][0]["label"]
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    try:
        for line in process.stderr:  # up once it says so
            if "(Ctrl-C to stop)" in line:
                break
        assert ask(0) == 200
        with ThreadPoolExecutor(16) as pool:
            burst = [pool.submit(ask, index) for index in range(200)]
            while not any(future.done() for future in burst):
                time.sleep(0.01)
            process.send_signal(signal.SIGTERM)
            statuses = [future.result() for future in burst]  # raises if one was cut
        stderr = process.communicate(timeout=120)[1]
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "SIGTERM received" not in stderr and "Traceback" not in stderr
    assert "draining in-flight requests" in stderr and "[serve] stopped" in stderr
    assert statuses.count(200) >= 1 and set(statuses) <= {200, 404, 503}, statuses
