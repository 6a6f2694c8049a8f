"""Faithfulness of attributions: does deleting the words a method ranks highest lower the
predicted class's probability more than deleting as many random words?

For each test text of the FPB AllAgree model (benchmarks/compression.py's), and each k in
1..5: delete the top-k words by attribution, and separately k random words (3 draws),
and measure the fall in the predicted class's probability. AOPC (area over the
perturbation curve) is that fall averaged over texts; the method is faithful where its
AOPC beats random's at every k. Integrated Gradients explains the PyTorch model (and
deletion is scored on it); occlusion explains the served INT8 ONNX model (and deletion is
scored on that).

    python benchmarks/faithfulness.py [--examples 200] [--steps 50]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from common import RESULTS, table, write_results
from serve_load import model_artifacts

KS = (1, 2, 3, 4, 5)
RANDOM_DRAWS = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from fulcrum.artifacts import open_artifact
    from fulcrum.explain.explainer import OnnxModel, TorchModel

    train_dir, variant_dir = model_artifacts()
    texts = test_texts(train_dir, min_words=max(KS) + 1)[: args.examples]
    print(f"[faithfulness] {len(texts)} test texts with more than {max(KS)} words", flush=True)
    models = {
        "integrated_gradients": TorchModel(open_artifact(train_dir, kind="train")),
        "occlusion": OnnxModel(open_artifact(variant_dir, kind="export")),
    }
    results = {
        method: deletion_curve(model, method, texts, args.steps, args.seed)
        for method, model in models.items()
    }
    rows = [
        {
            "method": method,
            "k": k,
            "aopc": values["aopc"][k],
            "random": values["random_aopc"][k],
            "ratio": values["aopc"][k] / max(values["random_aopc"][k], 1e-9),
        }
        for method, values in results.items()
        for k in KS
    ]
    print()
    print(
        table(
            rows,
            [
                ("method", "method"),
                ("k", "k words deleted"),
                ("aopc", "AOPC (top-k)"),
                ("random", "AOPC (random k)"),
                ("ratio", "ratio"),
            ],
        )
    )
    faithful = {
        method: all(values["aopc"][k] > values["random_aopc"][k] for k in KS)
        for method, values in results.items()
    }
    print("\nbeats random at every k: " + ", ".join(f"{m} {v}" for m, v in faithful.items()))
    plot(results, RESULTS / "faithfulness.png")
    path = write_results(
        "faithfulness",
        {"examples": len(texts), "steps": args.steps, "results": results, "faithful": faithful},
    )
    print(f"wrote {path}")


def deletion_curve(model, method: str, texts: list[str], steps: int, seed: int) -> dict:
    """How far the predicted class's probability falls when the k words the method ranks
    highest are deleted, against k words drawn at random (AOPC, per k)."""
    rng = np.random.default_rng(seed)
    falls = {"method": {k: [] for k in KS}, "random": {k: [] for k in KS}}
    deltas = []
    started = time.time()
    for index, text in enumerate(texts, start=1):
        (explanation,) = model.explain(text, method, steps, None)
        if explanation.delta is not None:
            deltas.append(abs(explanation.delta))
        encoding = model.tokenizer.encode(text)
        target = model.labels.index(explanation.target)
        full = explanation.probability
        ranked = np.argsort([-word.score for word in explanation.words], kind="stable")
        for k in KS:
            falls["method"][k].append(
                full - probability_without(model, encoding, ranked[:k], target)
            )
            draws = [
                full
                - probability_without(
                    model, encoding, rng.choice(len(explanation.words), k, replace=False), target
                )
                for _ in range(RANDOM_DRAWS)
            ]
            falls["random"][k].append(float(np.mean(draws)))
        if index % 25 == 0 or index == len(texts):
            rate = index / (time.time() - started)
            print(
                f"[faithfulness] {method}: {index}/{len(texts)} texts, {rate:.1f}/s, "
                f"ETA {(len(texts) - index) / rate:.0f}s",
                flush=True,
            )
    return {
        "aopc": {k: float(np.mean(falls["method"][k])) for k in KS},
        "random_aopc": {k: float(np.mean(falls["random"][k])) for k in KS},
        "seconds": round(time.time() - started, 1),
        "mean_abs_convergence_delta": float(np.mean(deltas)) if deltas else None,
    }


def test_texts(train_dir: Path, min_words: int) -> list[str]:
    from fulcrum.artifacts import open_artifact
    from fulcrum.data import load_splits, texts_of
    from fulcrum.recipe import validate_recipe

    recipe = validate_recipe(open_artifact(train_dir, kind="train").manifest.settled_recipe)
    splits = load_splits(recipe.data, recipe.seed, recipe.task.type)
    return [text for text in texts_of(splits.test, 100_000) if len(text.split()) >= min_words]


def probability_without(model, encoding, words: np.ndarray, target: int) -> float:
    """The target's probability with the given words' subwords removed from the input."""
    from fulcrum.explain.words import word_positions

    positions = word_positions(encoding)
    dropped = {p for word in words for p in positions[int(word)]}
    ids = [token for i, token in enumerate(encoding.ids) if i not in dropped]
    return float(model.probabilities(np.asarray([ids], dtype=np.int64))[0][target])


def plot(results: dict, target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.6), sharey=True)
    for axis, (method, values) in zip(np.atleast_1d(axes), results.items(), strict=True):
        axis.plot(KS, [values["aopc"][k] for k in KS], "o-", label=f"top-k by {method}")
        axis.plot(KS, [values["random_aopc"][k] for k in KS], "s--", label="random k")
        axis.set(title=method, xlabel="words deleted (k)", xticks=list(KS))
        axis.legend()
    np.atleast_1d(axes)[0].set_ylabel("fall in predicted-class probability")
    figure.tight_layout()
    figure.savefig(target, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    main()
