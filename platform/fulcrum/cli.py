"""`fulcrum`: the command line. Thin: parse, call a stage, print what it produced.

fulcrum validate RECIPE          check a recipe and print it with defaults filled in
fulcrum train    RECIPE          Ray Train + DeepSpeed + PEFT -> training artifact
fulcrum tune     RECIPE          Ray Tune campaign over the recipe's tune: space (or, with --auto
                                 --budget 30m, a built-in one) -> best recipe
fulcrum export   RECIPE          training artifact -> ONNX artifact (parity-checked)
fulcrum compress RECIPE|ARTIFACT training artifact -> fp32 / INT8 / fp16 ONNX variants, each
                                 gated against its PyTorch parent, and a report
fulcrum serve    RECIPE          ONNX artifact -> Ray Serve endpoint (until Ctrl-C)
fulcrum serve config ARTIFACT... Serve config file (cluster/serve.yaml) for those artifacts
fulcrum run      RECIPE          train, export (and compress) and serve, in order
fulcrum explain  ARTIFACT TEXT.. token attributions (terminal, and HTML with --html)
fulcrum predict  ARTIFACT INPUT... --output OUT   score files, folders, globs or URIs on
                                 Ray Data -> Parquet parts, rejects and a manifest
fulcrum submit   RECIPE --address URL   the pipeline as a Ray job on a cluster (logs stream)
fulcrum drift    ARTIFACT --traffic LOG|CORPUS   served traffic against the test split:
                                 label mix and confidence per window, and whether to retrain
fulcrum runs     [DIR]           every artifact under DIR with its headline figures
fulcrum show     ARTIFACT        one artifact: lineage, metrics, files
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from fulcrum.artifacts import artifact_dir
from fulcrum.errors import FulcrumError
from fulcrum.log import DEFAULT, QUIET, VERBOSE, divert_native_stderr, stage_log
from fulcrum.log import configure as configure_output
from fulcrum.pipeline import STAGE_SECTIONS
from fulcrum.recipe import Recipe, load_recipe

serve_log = stage_log("serve")
RETRAIN_DUE = 3  # `fulcrum drift`'s exit status when a window drifted: for cron and CI


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:2] == ["serve", "config"]:
        return serve_config_main(argv[2:])
    parser = _parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    configure_output(args.verbosity)
    divert_native_stderr()
    try:
        args.overrides = [*getattr(args, "overrides", []), *_auto_overrides(args)]
        recipe = _recipe(args) if hasattr(args, "recipe") else None
        return args.command(recipe, args)
    except FulcrumError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _recipe(args) -> Recipe:
    """The recipe file, or (for commands that take one) the recipe a training artifact
    was made with, whose outputs then go beside it."""
    from fulcrum.storage import is_uri
    from fulcrum.storage import parent as parent_of

    target = Path(args.recipe)
    remote = is_uri(args.recipe)
    if getattr(args, "takes_artifact", False) and (remote or target.is_dir()):
        from fulcrum.artifacts import open_artifact
        from fulcrum.recipe import apply_overrides, validate_recipe

        parent = open_artifact(args.recipe, kind="train", verify=False)
        raw = apply_overrides(dict(parent.manifest.recipe), args.overrides)
        if args.output_dir is None:
            beside = parent_of(args.recipe, 2) if remote else target.resolve().parent.parent
            args.output_dir = str(beside)
        args.train_dir = args.recipe
        return validate_recipe(raw, source=f"{target}/manifest.json")
    return load_recipe(args.recipe, args.overrides)


def _output_options() -> argparse.ArgumentParser:
    """-q / -v, taken by every command (after its name, where people type them)."""
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_mutually_exclusive_group()
    group.add_argument(
        "-q",
        "--quiet",
        dest="verbosity",
        action="store_const",
        const=QUIET,
        default=DEFAULT,
        help="print results, warnings and errors only",
    )
    group.add_argument(
        "-v",
        "--verbose",
        dest="verbosity",
        action="store_const",
        const=VERBOSE,
        help="also print what Ray, DeepSpeed and ONNX Runtime log, and every Ray worker's output",
    )
    return options


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fulcrum",
        description="Fine-tune, export and serve transformer classifiers from one YAML recipe.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    _stage_commands(commands)
    _artifact_commands(commands)
    _run_commands(commands)
    return parser


def _recipe_command(commands, name: str, handler, help_text: str) -> argparse.ArgumentParser:
    """A command that reads a recipe, with --set and --output-dir."""
    sub = commands.add_parser(
        name, help=help_text, description=help_text, parents=[_output_options()]
    )
    sub.add_argument("recipe", help="recipe YAML file")
    sub.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help="override a recipe value, e.g. --set train.epochs=1 (repeatable)",
    )
    sub.add_argument("--output-dir", help="where artifacts go (default: the recipe's output_dir)")
    sub.set_defaults(command=handler)
    return sub


def _stage_commands(commands) -> None:
    """validate, train, tune, export, compress, serve: one stage each."""

    def command(name: str, handler, help_text: str) -> argparse.ArgumentParser:
        return _recipe_command(commands, name, handler, help_text)

    command("validate", _validate, "check a recipe and print it with every default filled in")
    train = command(
        "train", _train, "fine-tune on Ray Train (DeepSpeed + PEFT) into a training artifact"
    )
    train.add_argument("--export", action="store_true", help="then export it to ONNX")
    tune = command("tune", _tune, "search the recipe's tune: space on Ray Tune; each trial trains")
    tune.add_argument(
        "--auto",
        action="store_true",
        help="search Fulcrum's built-in space for the recipe's method and task (tune.auto)",
    )
    tune.add_argument(
        "--budget",
        metavar="DURATION",
        help="wall-clock budget of the campaign: 30m, 2h, 1h30m, 90s (tune.time_budget_s)",
    )
    export = command("export", _export, "export a training artifact to ONNX and check parity")
    export.add_argument(
        "--from", dest="train_dir", help="training artifact (default: the recipe's)"
    )
    compress = command(
        "compress",
        _compress,
        "build the recipe's compressed variants (fp32, INT8, fp16 ONNX), gate each against "
        "its PyTorch parent on validation and test, and report size, latency and metric",
    )
    compress.add_argument(
        "--from", dest="train_dir", help="training artifact (default: the recipe's)"
    )
    compress.set_defaults(takes_artifact=True)
    monitor = command(
        "monitor",
        _monitor,
        "score the recipe's monitor: inputs (dated texts), count opinion per entity and time "
        "window, and alert when an entity's negative share or volume leaves its history",
    )
    monitor.add_argument("--output", help="output folder (default: monitor.output)")
    monitor.add_argument(
        "--model", help="export artifact (default: monitor.model, or the recipe's)"
    )
    serve = command("serve", _serve, "serve an export artifact on Ray Serve until interrupted")
    serve.add_argument("--artifact", help="export artifact (default: the recipe's)")
    serve.add_argument(
        "--force",
        action="store_true",
        help="serve a model that has not learned (training warned), or a compressed variant "
        "that failed its parity gate (not deployable)",
    )
    _canary_options(serve)


def _artifact_commands(commands) -> None:
    """explain, predict, runs, show: commands that read artifacts, not recipes."""
    explain = commands.add_parser(
        "explain",
        parents=[_output_options()],
        help="token attributions: why a model decided, word by word",
        description="Explain predictions of a training artifact (Integrated Gradients on "
        "PyTorch) or an export artifact (occlusion on ONNX Runtime, as served).",
    )
    explain.add_argument("artifact", help="training or export artifact folder")
    explain.add_argument("texts", nargs="+", metavar="TEXT")
    explain.add_argument(
        "--method", default="auto", choices=["auto", "integrated_gradients", "occlusion"]
    )
    explain.add_argument("--steps", type=int, default=50, help="Integrated Gradients steps")
    explain.add_argument("--target", help="explain this label instead of the predicted one")
    explain.add_argument(
        "--text-pair",
        action="append",
        metavar="TEXT_PAIR",
        help="a text-pair model's second text: one per TEXT, in order",
    )
    explain.add_argument("--html", help="also write a self-contained HTML view here")
    explain.set_defaults(command=_explain)
    predict = commands.add_parser(
        "predict",
        parents=[_output_options()],
        help="score a corpus offline: files, folders, globs or s3:// / gs:// URIs",
        description="Score CSV, TSV, JSONL or Parquet files with an export artifact on a "
        "pool of ONNX Runtime actors (Ray Data), one Parquet part per input file. Run again "
        "with the same --output to go on after an interruption: finished files are skipped.",
    )
    predict.add_argument("artifact", help="export artifact folder or URI")
    predict.add_argument("inputs", nargs="+", metavar="INPUT")
    predict.add_argument("--output", required=True, help="output folder or URI")
    predict.add_argument("--text-column", default="text", help="the column to score (text)")
    predict.add_argument(
        "--text-pair-column",
        default="text_pair",
        help="a text-pair model's second text (text_pair)",
    )
    predict.add_argument(
        "--actors", type=int, help="scoring actors (one per CPU, or per GPU, by default)"
    )
    predict.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads per actor")
    predict.add_argument(
        "--batch-size", type=int, help="rows per model call (256 on CPU, 1024 on GPU)"
    )
    predict.set_defaults(command=_predict)
    drift = commands.add_parser(
        "drift",
        parents=[_output_options()],
        help="has traffic drifted from what the model was measured on? (retrain due or not)",
        description="Compare a served model's answers on traffic (Serve's traffic log, or a "
        "corpus scored here) with its answers on its own test split: the label mix (PSI) "
        "and the share of unsure answers, per window.",
    )
    drift.add_argument("artifact", help="the export artifact that serves (or would serve)")
    drift.add_argument(
        "--traffic",
        required=True,
        help="a traffic log (serve.traffic_log: a folder or one replica's .jsonl), or a "
        "corpus of texts (csv, tsv, jsonl, parquet) to score in windows",
    )
    drift.add_argument("--every", type=float, default=3600.0, help="log: seconds per period")
    drift.add_argument("--window-texts", type=int, default=1000, help="corpus: texts per window")
    drift.add_argument("--text-column", default="text", help="corpus: the column of texts")
    drift.set_defaults(command=_drift)
    runs = commands.add_parser(
        "runs",
        help="list the artifacts under an output directory, oldest first",
        parents=[_output_options()],
    )
    runs.add_argument("output_dir", nargs="?", default="artifacts")
    runs.set_defaults(command=_runs)
    show = commands.add_parser(
        "show", help="one artifact: its lineage, metrics and files", parents=[_output_options()]
    )
    show.add_argument("artifact", help="its folder, or the end of its path (demo/export)")
    show.add_argument("--output-dir", default="artifacts", help="where to look for it")
    show.set_defaults(command=_show)


def _run_commands(commands) -> None:
    """run and submit: the whole pipeline, here or as a Ray job."""

    def command(name: str, handler, help_text: str) -> argparse.ArgumentParser:
        return _recipe_command(commands, name, handler, help_text)

    submit = command(
        "submit", _submit, "run the pipeline as a Ray job on a cluster, streaming its logs"
    )
    submit.add_argument("--address", required=True, help="the job server, http://HEAD:8265")
    submit.add_argument(
        "--pip", action="store_true", help="install the pinned packages in the job's environment"
    )
    submit.add_argument(
        "--no-follow", action="store_true", help="print the job id and return at once"
    )
    run = command(
        "run",
        _run,
        "tune (with a tune: section), train, export, compress (with a compress: section) and "
        "serve, in order; a stage whose artifact is up to date is skipped",
    )
    run.add_argument(
        "--rerun",
        action="append",
        default=[],
        choices=list(STAGE_SECTIONS),
        help="run this stage even when its artifact is up to date (repeatable)",
    )
    run.add_argument(
        "--force",
        action="store_true",
        help="export and serve a model that has not learned (training warned) or a "
        "variant that failed its parity gate",
    )
    run.add_argument(
        "--probe",
        action="append",
        default=[],
        metavar="TEXT",
        help="after serving, send TEXT to the endpoint, print the answer, then shut down",
    )
    run.add_argument(
        "--probe-pair",
        action="append",
        default=[],
        nargs=2,
        metavar=("TEXT", "TEXT_PAIR"),
        help="--probe for a text-pair model: the pair's two texts",
    )
    run.add_argument(
        "--no-serve",
        action="store_true",
        help="stop after the last stage and print the artifact to serve (what a Ray job runs: "
        "a job ends, an endpoint should not)",
    )


def _auto_overrides(args) -> list[str]:
    """`fulcrum tune --auto --budget 30m` as the recipe keys it stands for."""
    overrides = []
    if getattr(args, "auto", False):
        overrides.append("tune.auto=true")
    if getattr(args, "budget", None):
        from fulcrum.tune.auto import parse_budget

        overrides.append(f"tune.time_budget_s={parse_budget(args.budget)}")
    return overrides


def _validate(recipe: Recipe, args) -> int:
    from fulcrum.recipe import SETTLED

    raw = recipe.to_dict()
    print(json.dumps(raw, indent=2))
    left = [key for key in SETTLED if _at(raw, key) is None]
    if left:
        print(
            f"left to the method and data, settled when training starts: {', '.join(left)}",
            file=sys.stderr,
        )
    print(f"recipe ok (hash {recipe.hash[:12]})", file=sys.stderr)
    return 0


def _at(raw: dict, key_path: str):
    for key in key_path.split("."):
        raw = raw.get(key) if isinstance(raw, dict) else None
    return raw


def _train(recipe: Recipe, args) -> int:
    from fulcrum.train.stage import train

    artifact = train(recipe, args.output_dir)
    _print_training_summary(artifact)
    if args.export:
        from fulcrum.compress.export import export

        print(f"export artifact: {export(recipe, artifact, args.output_dir)}")
    return 0


def _tune(recipe: Recipe, args) -> int:
    from fulcrum.tune.campaign import tune

    campaign = tune(recipe, args.output_dir)
    print(f"campaign artifact: {campaign}")
    print(f"best recipe: {campaign / 'best_recipe.yaml'} (fulcrum train it)")
    return 0


def _export(recipe: Recipe, args) -> int:
    from fulcrum.compress.export import export

    artifact = export(recipe, args.train_dir, args.output_dir)
    print(f"export artifact: {artifact}")
    return 0


def _compress(recipe: Recipe, args) -> int:
    from fulcrum.compress.stage import compress

    artifact = compress(recipe, args.train_dir, args.output_dir)
    print((artifact / "report.md").read_text())
    print(f"compress artifact: {artifact}")
    return 0


def _serve(recipe: Recipe, args) -> int:
    from fulcrum.serve import launch

    artifact = args.artifact or artifact_dir(recipe, "export", args.output_dir)
    name = launch.served_name(artifact)
    assistants = {}
    if recipe.assistant is not None:
        assistants[name] = artifact_dir(recipe, "assistant", args.output_dir)
    canaries = _canaries(args, [name])
    base_url = launch.start({name: artifact}, recipe.serve, args.force, assistants, canaries)
    serve_log.info(f"serving {artifact} at {base_url}/v1/models/{name}/predict (Ctrl-C to stop)")
    for canary in canaries.values():
        serve_log.info(
            f"canary: {canary.artifact} answers {100 * canary.share:g}% of its requests "
            f"(GET {base_url}/v1/models/{name} compares them)"
        )
    if assistants:
        serve_log.info(f"assistant: {base_url}/v1/assistants/{name}/reply")
    return _serve_until_stopped(recipe.serve)


class _Terminated(Exception):
    """SIGTERM: what Docker, Kubernetes and systemd send to stop a service."""


def _serve_until_stopped(section) -> int:
    """Serve until Ctrl-C or SIGTERM, then delete the application: Serve stops routing new
    requests to it and lets its replicas finish the requests they hold (up to their
    graceful_shutdown_timeout_s). SIGTERM is a stop asked for, so it ends with exit code 0;
    without this handler Ray's own prints a stack dump and the process dies mid-request."""
    import signal

    from fulcrum.serve import launch

    def terminate(signum, frame):
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        while True:
            time.sleep(3600)
    except _Terminated:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the drain
        serve_log.info("SIGTERM: draining in-flight requests, then stopping")
        launch.stop(section)
        serve_log.info("stopped")
        return 0
    except BaseException:
        launch.stop(section)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(recipe: Recipe, args) -> int:
    from fulcrum.pipeline import run_stages
    from fulcrum.runtime import init_ray

    started = time.time()
    pairs = recipe.task.type == "text_pair_classification"
    if (args.probe and pairs) or (args.probe_pair and not pairs):
        wanted = "--probe-pair TEXT TEXT_PAIR" if pairs else "--probe TEXT"
        raise FulcrumError(f"{recipe.task.type} is probed with {wanted}")
    init_ray()  # one Ray job for all stages
    run = run_stages(recipe, args.output_dir, rerun=tuple(args.rerun), force=args.force)
    if run.actions.get("train") == "ran":
        _print_training_summary(run.artifacts["train"])
    served = run.served
    if args.no_serve:
        for stage, path in run.artifacts.items():
            print(f"{stage} artifact: {path} ({run.actions[stage]})", flush=True)
        print(f"to serve: {served}", flush=True)
        return 0
    from fulcrum.serve import launch

    # One URL name whichever variant serves, so clients do not change when compression does.
    route = f"/v1/models/{recipe.name}/predict"
    assistants = {recipe.name: run.assistant} if run.assistant else {}
    base_url = launch.start({recipe.name: served}, recipe.serve, args.force, assistants)
    serve_log.info(f"{base_url}{route} is up ({time.time() - started:.0f}s since start)")
    if assistants:
        serve_log.info(f"assistant: {base_url}/v1/assistants/{recipe.name}/reply")
    probes = [tuple(pair) for pair in args.probe_pair] + args.probe
    if not probes:
        serve_log.info("serving until Ctrl-C")
        return _serve_until_stopped(recipe.serve)
    try:
        answer = launch.predict(base_url, recipe.name, probes)
        for text, prediction in zip(probes, answer["predictions"]):
            print(f"[serve] POST {route} {text!r} -> {_said(prediction)}")
        for text in args.probe if assistants else ():
            replied = launch.reply(base_url, recipe.name, text)
            print(
                f"[serve] POST /v1/assistants/{recipe.name}/reply {text!r} -> "
                f"{replied['answer']!r} ({replied['chosen_by']}: {replied['reason']})"
            )
    finally:
        launch.stop(recipe.serve)
    serve_log.info(f"done in {time.time() - started:.0f}s; Serve shut down")
    return 0


def _explain(_, args) -> int:
    from fulcrum.explain.explainer import explain
    from fulcrum.explain.render import headline, html_page, terminal

    if args.steps < 1:
        raise FulcrumError(f"--steps: must be >= 1 (got {args.steps})")
    texts = args.texts
    if args.text_pair:
        if len(args.text_pair) != len(texts):
            raise FulcrumError(
                f"--text-pair: one per TEXT ({len(texts)} texts, {len(args.text_pair)} given)"
            )
        texts = list(zip(texts, args.text_pair, strict=True))
    results = explain(args.artifact, texts, args.method, args.steps, args.target)
    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    for text, explanations in zip(texts, results, strict=True):
        if not explanations:
            print(f"no entities predicted: {text!r}")
        for explanation in explanations:
            print(headline(explanation))
            print("  " + terminal(explanation, colour))
            if explanation.delta is not None and abs(explanation.delta) > 0.05:
                print(
                    f"  (convergence delta {explanation.delta:+.3f}: the scores miss the change "
                    f"in probability by that much; raise --steps above {args.steps})"
                )
    if args.html:
        from fulcrum.artifacts import write_text_atomic

        flat = [explanation for explanations in results for explanation in explanations]
        try:
            write_text_atomic(Path(args.html), html_page(flat, f"Fulcrum: {args.artifact}"))
        except OSError as error:
            raise FulcrumError(f"--html {args.html}: cannot write ({error.strerror})") from None
        print(f"wrote {args.html}")
    return 0


def _predict(_, args) -> int:
    from fulcrum.predict.run import predict, summary_lines

    summary = predict(
        args.artifact,
        args.inputs,
        args.output,
        text_column=args.text_column,
        text_pair_column=args.text_pair_column,
        actors=args.actors,
        batch_size=args.batch_size,
        threads=args.threads,
    )
    for line in summary_lines(summary):
        print(line)
    return 0


def _monitor(recipe: Recipe, args) -> int:
    from fulcrum.monitor.run import monitor, summary_lines

    for line in summary_lines(monitor(recipe, args.output, args.model)):
        print(line)
    return 0


def _submit(recipe: Recipe, args) -> int:
    from fulcrum.submit import submit

    job_id, status = submit(
        recipe, args.address, args.output_dir, pip=args.pip, follow=not args.no_follow
    )
    print(job_id)
    return 0 if status in ("SUCCEEDED", "SUBMITTED") else 1


def _drift(_, args) -> int:
    from fulcrum import drift

    if args.every <= 0 or args.window_texts < 1:
        raise FulcrumError("--every and --window-texts: must be positive")
    reference = drift.reference_window(args.artifact)
    if drift.is_traffic_log(args.traffic):
        windows = drift.log_windows(args.traffic, args.every)
    else:
        windows = drift.corpus_windows(
            args.traffic, args.artifact, args.text_column, args.window_texts
        )
    print(
        f"reference: the model on its test split, {reference.texts:,} texts, "
        f"{100 * reference.share(reference.low_confidence):.0f}% unsure"
    )
    due = []
    for index, window in enumerate(windows, start=1):
        found = drift.compare(reference, window)
        when = (
            time.strftime("%Y-%m-%d %H:%M", time.gmtime(window.start))
            if window.start
            else f"window {index}"
        )
        verdict = (
            "retrain due: " + "; ".join(found["reasons"])
            if found["retrain_due"]
            else "ok"
            if found["judged"]
            else f"too few texts to judge (< {drift.MIN_TEXTS})"
        )
        print(
            f"{when}  {found['texts']:>7,} texts  PSI {found['psi']:.3f}  unsure "
            f"{100 * found['low_confidence_share']:.0f}%  {verdict}"
        )
        due += [when] if found["retrain_due"] else []
    if not windows:
        print("no traffic to compare")
    print(f"retrain due: drift in {len(due)} of {len(windows)} windows" if due else "no drift")
    return RETRAIN_DUE if due else 0


def _runs(_, args) -> int:
    from fulcrum.catalog import find_artifacts

    found = find_artifacts(args.output_dir)
    if not found:
        print(f"no artifacts under {args.output_dir}")
        return 0
    width = max(len(item["path"]) for item in found)
    for item in found:
        print(
            f"{(item['created_at'] or '?')[:19]}  {item['kind'] or '?':<8}  "
            f"{item['path']:<{width}}  {item['headline']}"
        )
    return 0


def _show(_, args) -> int:
    from fulcrum.catalog import find_artifacts, lineage
    from fulcrum.manifest import parse_manifest
    from fulcrum.storage import MANIFEST, is_uri, join, read_manifest_bytes

    target = args.artifact if is_uri(args.artifact) else Path(args.artifact)
    if read_manifest_bytes(target) is None:
        wanted = Path(args.artifact).parts
        matches = [
            item["path"]
            for item in find_artifacts(args.output_dir)
            if Path(item["path"]).parts[-len(wanted) :] == wanted
        ]
        if len(matches) != 1:
            found = "none" if not matches else ", ".join(matches)
            raise FulcrumError(
                f"{args.artifact}: {'no' if not matches else 'more than one'} artifact under "
                f"{args.output_dir} matches ({found})"
            )
        target = matches[0]
    manifest = parse_manifest(read_manifest_bytes(target), where=join(str(target), MANIFEST))
    print(f"{manifest.kind} artifact {target}")
    for index, step in enumerate(lineage(target)):
        test = step["test"] or {}
        figures = ", ".join(f"{k} {v:.4f}" for k, v in test.items() if isinstance(v, float))
        print(
            f"  {'<- ' if index else '   '}{step['kind']:<8} {step['path']}  recipe {step['recipe']} "
            f"{step['recipe_hash']}  data {step['data_fingerprint']}"
            + (f"  test: {figures}" if figures else "")
        )
    metrics = {k: v for k, v in manifest.metrics.items() if k != "history"}
    print(json.dumps(metrics, indent=2, default=str)[:4000])
    print(f"{len(manifest.files)} files, sha256 in {join(str(target), MANIFEST)}")
    return 0


def _said(prediction: dict) -> str:
    if "entities" in prediction:
        found = [f"{e['text']!r}:{e['entity']}" for e in prediction["entities"]]
        return ", ".join(found) or "no entities"
    return f"{prediction['label']} ({prediction['score']:.2f})"


def serve_config_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fulcrum serve config",
        description=serve_config_main.__doc__.split("\n")[0],
        parents=[_output_options()],
    )
    parser.add_argument("artifacts", nargs="+", metavar="[NAME=]ARTIFACT")
    parser.add_argument("--recipe", help="take the serve: settings from this recipe")
    parser.add_argument("--force", action="store_true", help="include not-deployable variants")
    _canary_options(parser)
    parser.add_argument("-o", "--output", help="write here (default: standard output)")
    return parser


def _canary_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--canary",
        metavar="[NAME=]ARTIFACT",
        help="a new version served beside the model NAME (default: the only one), "
        "answering --canary-share of its requests",
    )
    parser.add_argument(
        "--canary-share", type=float, default=0.1, help="the canary's share of requests (0.1)"
    )


def _canaries(args, names: list[str]) -> dict:
    """--canary as AppArgs takes it: {model name: CanaryArgs}."""
    from fulcrum.serve.config import CanaryArgs

    if not args.canary:
        return {}
    name, _, path = args.canary.rpartition("=") if "=" in args.canary else ("", "", args.canary)
    if not name and len(names) != 1:
        raise FulcrumError(
            f"--canary: name the model it stands beside (one of {', '.join(names)}=)"
        )
    if not 0 < args.canary_share < 1:
        raise FulcrumError(f"--canary-share: between 0 and 1 (got {args.canary_share})")
    return {name or names[0]: CanaryArgs(artifact=path, share=args.canary_share, force=args.force)}


def serve_config_main(argv: list[str]) -> int:
    """`fulcrum serve config ARTIFACT... [-o FILE]`: a Serve config file for `serve deploy`
    serving those export artifacts (each under its recipe's name, or NAME=ARTIFACT)."""
    import yaml

    from fulcrum.recipe import ServeSection
    from fulcrum.serve import launch

    args = serve_config_parser().parse_args(argv)
    configure_output(args.verbosity)
    try:
        section = load_recipe(args.recipe).serve if args.recipe else ServeSection()
        models = {}
        for item in args.artifacts:
            name, _, path = item.rpartition("=") if "=" in item else ("", "", item)
            models[name or launch.served_name(path)] = path
        config = launch.serve_config(
            models, section, force=args.force, canaries=_canaries(args, list(models))
        )
    except FulcrumError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    text = (
        "# Ray Serve config written by `fulcrum serve config`; validated against\n"
        "# ray.serve.schema.ServeDeploySchema. Deploy: serve deploy FILE (or serve run FILE)\n"
        + yaml.safe_dump(config, sort_keys=False)
    )
    if args.output:
        from fulcrum.artifacts import write_text_atomic

        try:
            write_text_atomic(Path(args.output), text)
        except OSError as error:
            print(f"error: {args.output}: cannot write ({error.strerror})", file=sys.stderr)
            return 2
        print(f"wrote {args.output} ({len(models)} model(s): {', '.join(models)})", file=sys.stderr)
    else:
        print(text, end="")
    return 0


SUMMARY_FIELDS = {  # what a person reads first, per task
    "sequence_classification": (
        ("accuracy", "accuracy"),
        ("macro_f1", "macro-F1"),
        ("examples", "examples"),
    ),
    "text_pair_classification": (
        ("accuracy", "accuracy"),
        ("macro_f1", "macro-F1"),
        ("examples", "examples"),
    ),
    "token_classification": (
        ("f1", "entity F1"),
        ("precision", "precision"),
        ("recall", "recall"),
        ("entities", "entities"),
    ),
}


def _print_training_summary(artifact: Path) -> None:
    from fulcrum.artifacts import open_artifact

    opened = open_artifact(artifact, kind="train", verify=False)
    metrics = opened.metrics
    for split in ("validation", "test"):
        values = metrics.get(split)
        if values:
            parts = [
                f"{label} {values[key]}"
                if isinstance(values[key], int)
                else f"{label} {values[key]:.4f}"
                for key, label in SUMMARY_FIELDS[opened.manifest.task]
            ]
            print(f"{split}: " + "  ".join(parts))
    _print_per_label(metrics.get("per_label") or {}, artifact)
    stopped = metrics.get("stopped_early")
    print(
        f"training artifact: {artifact} (best: epoch {metrics['best_epoch']}, step "
        f"{metrics['best_step']}; {metrics['train_seconds']:.0f}s"
        + (f"; stopped early at step {stopped['step']}" if stopped else "")
        + ")"
    )


PER_LABEL_SHOWN = 20  # more labels than this: the weakest ones, and where the rest are


def _print_per_label(report: dict[str, list[dict]], artifact: Path) -> None:
    split = "test" if report.get("test") else "validation"
    rows = report.get(split)
    if not rows:
        return
    shown = rows
    heading = f"per label ({split}):"
    if len(rows) > PER_LABEL_SHOWN:
        shown = sorted(rows, key=lambda row: (row["f1"], -row["support"]))[:10]
        heading = (
            f"per label ({split}), the 10 weakest of {len(rows)} "
            f"(all in {Path(artifact) / 'per_label.csv'}):"
        )
    from fulcrum.words import display_width, padded

    width = max(len("label"), *(display_width(str(row["label"])) for row in shown))
    print(heading)
    print(f"  {padded('label', width)}  precision  recall     f1  support")
    for row in shown:
        print(
            f"  {padded(str(row['label']), width)}  {row['precision']:9.3f}  "
            f"{row['recall']:6.3f}  {row['f1']:5.3f}  {row['support']:7d}"
        )


if __name__ == "__main__":
    sys.exit(main())
