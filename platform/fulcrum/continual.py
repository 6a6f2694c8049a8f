"""Continual learning: a model that goes on learning from a training artifact (its parent)
on new data, without forgetting what the parent knew.

- **Labels**: the parent's, in its order, then the labels new in the data. The parent's
  label ids stay what they were, so its rows, its test split and its outputs read the same
  in the continued model.
- **Weights**: training starts from the parent's merged model. Its head grows a row per new
  label, the old rows kept; a new row starts at the mean of the old ones (plus a little
  noise, so that several new labels can part), which gives a new label the average old
  label's score rather than a random one that could outvote the rest from step one. The
  head stays "new" to the method (every method trains it), and the parent's own base
  model decides the architecture.
- **Replay**: a share of the parent's own training rows, drawn per label, joins the new
  training split (rehearsal); the parent's data is read again from its recipe and checked
  against the fingerprint the parent recorded.
- **Distillation** (optional, `continual.distill`): a soft term against the parent's own
  outputs over its labels, on every training row (learning without forgetting, Li and Hoiem
  2016): the parent's logits are computed once, before training, as a teacher's are.
- **The promotion gate**: the continued model is measured on the parent's test split as
  well as its own; it goes on to export and Serve only if it gained on the new test split
  and lost no more than `continual.max_old_drop` points on the old one, both against the
  parent measured the same way (with the new labels' scores set below every other, so the
  parent never predicts what it never knew).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from fulcrum.models.classifier import CARRIED_HEAD

NEW_ROW_NOISE = 0.02  # of the old rows' spread: parts several new labels' rows
NEVER = -1e4  # a logit no label the parent knew can lose to


def continued_base(parent, label_names: list[str]) -> Path:
    """A model directory to train from, prepared once per machine under
    $FULCRUM_CACHE/continued/: the parent's merged weights without their head, the head
    grown to `label_names` beside them (CARRIED_HEAD), the config naming the labels, and
    the parent's tokenizer."""
    from fulcrum.storage import cache_root

    key = hashlib.sha256(
        json.dumps([parent.manifest.files, label_names], sort_keys=True).encode()
    ).hexdigest()[:16]
    target = cache_root() / "continued" / f"{parent.manifest.name}-{key}"
    if (target / CARRIED_HEAD).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}"
    try:
        _write_base(parent, label_names, staging)
        try:
            os.replace(staging, target)
        except OSError:  # another process finished first: its copy is the same
            if not (target / CARRIED_HEAD).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _write_base(parent, label_names: list[str], folder: Path) -> None:
    from safetensors.torch import save_file

    from fulcrum.models.classifier import label_maps, load_tokenizer
    from fulcrum.train.merge import MERGED_DIR, TOKENIZER_DIR, load_merged

    model = load_merged(parent.path, parent.manifest.task)
    head = head_names(parent)
    state = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    grown = {
        name: grow(state[name], len(parent.labels), len(label_names), seed=index)
        for index, name in enumerate(head)
    }
    weights = {name: tensor.contiguous() for name, tensor in state.items() if name not in head}
    folder.mkdir(parents=True)
    save_file(weights, str(folder / "model.safetensors"))
    save_file(
        {name: tensor.contiguous() for name, tensor in grown.items()}, str(folder / CARRIED_HEAD)
    )
    config = json.loads((parent.path / MERGED_DIR / "config.json").read_text())
    maps = label_maps(label_names)
    config.update(
        id2label={str(key): value for key, value in maps["id2label"].items()},
        label2id=maps["label2id"],
    )
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    load_tokenizer(parent.path / TOKENIZER_DIR).save_pretrained(folder)


def head_names(parent) -> list[str]:
    """The parameters the parent's head is made of: what its base checkpoint lacked when
    the parent was built (fulcrum.models.classifier.new_head), found again on the meta
    device. A parent that was itself continued has its first ancestor's head."""
    from fulcrum.artifacts import open_artifact
    from fulcrum.models.classifier import label_maps, new_head, quiet_transformers
    from fulcrum.models.registry import resolve_model_dir
    from fulcrum.tasks import TASKS

    ancestor = (parent.manifest.settled_recipe.get("continual") or {}).get("parent")
    if ancestor:
        return head_names(open_artifact(ancestor, kind="train"))
    quiet_transformers()
    base = resolve_model_dir(parent.manifest.base_model)
    model, info = (
        TASKS[parent.manifest.task]
        .model_class()
        .from_pretrained(
            base,
            device_map="meta",
            use_kernels=False,
            output_loading_info=True,
            **label_maps(parent.labels),
            **parent.manifest.model_overrides,
        )
    )
    return new_head(model, info["missing_keys"])


def grow(tensor, old: int, new: int, seed: int):
    """A head tensor with rows for `new` labels: the first `old` as they were, the others
    the old rows' mean plus NEW_ROW_NOISE of their spread. Tensors with no label axis (a
    head's hidden layer) are returned as they are."""
    import torch

    if tensor.dim() == 0 or tensor.shape[0] != old or new == old:
        return tensor
    rows = tensor[:old]
    generator = torch.Generator().manual_seed(seed)
    spread = rows.std(dim=0, keepdim=True) if old > 1 else rows.abs().mean() + 1e-3
    noise = torch.randn((new - old, *rows.shape[1:]), generator=generator) * spread
    added = rows.mean(dim=0, keepdim=True) + NEW_ROW_NOISE * noise.to(rows.dtype)
    return torch.cat([rows, added])


class ParentOnNewLabels:
    """The parent's merged model, answering with the continued model's labels: the new
    labels' logits are NEVER, so it predicts only what it knew (the gate's baseline)."""

    def __init__(self, model, new_labels: int) -> None:
        self.model, self.new_labels = model, new_labels

    def __call__(self, **inputs):
        from types import SimpleNamespace

        import torch

        with torch.no_grad():
            logits = self.model(**inputs).logits
        if self.new_labels:
            shape = (*logits.shape[:-1], self.new_labels)
            logits = torch.cat([logits, torch.full(shape, NEVER, dtype=logits.dtype)], dim=-1)
        return SimpleNamespace(logits=logits)


def gate(
    metric: str,
    old: dict[str, dict[str, Any]],
    new: dict[str, dict[str, Any]],
    max_old_drop: float,
) -> dict[str, Any]:
    """Whether the continued model may be promoted: `old` and `new` hold the parent's and
    the continued model's metrics ("parent", "continued") on the old and the new test
    splits. Drops and gains are in points (metric x 100)."""
    old_drop = 100 * (old["parent"][metric] - old["continued"][metric])
    new_gain = 100 * (new["continued"][metric] - new["parent"][metric])
    reasons = []
    if old_drop > max_old_drop:
        reasons.append(
            f"it forgot: {metric} on the parent's test split fell {old_drop:.1f} points "
            f"({old['parent'][metric]:.3f} to {old['continued'][metric]:.3f}; "
            f"continual.max_old_drop {max_old_drop:g})"
        )
    if new_gain <= 0:
        reasons.append(
            f"it gained nothing on the new test split: {metric} {new['continued'][metric]:.3f} "
            f"against the parent's {new['parent'][metric]:.3f}"
        )
    return {
        "metric": metric,
        "old_drop_points": round(old_drop, 3),
        "new_gain_points": round(new_gain, 3),
        "max_old_drop": max_old_drop,
        "passed": not reasons,
        "reasons": reasons,
    }


def measure(parent, tables: dict[str, pa.Table], label_names: list[str], recipe):
    """The parent on `tables` as the continued model is measured: its labels extended to
    `label_names` (NEVER for the new ones), at the continued recipe's max_length. Returns
    (metrics, per-label report) per table."""
    from fulcrum.models.classifier import load_tokenizer
    from fulcrum.tasks import TASKS, evaluate_with_confusion
    from fulcrum.train.merge import EVAL_BATCH, TOKENIZER_DIR, load_merged, table_batches

    task = TASKS[recipe.task.type]
    model = ParentOnNewLabels(
        load_merged(parent.path, task.name), len(label_names) - len(parent.labels)
    )
    collate = task.make_collate(
        load_tokenizer(parent.path / TOKENIZER_DIR), recipe.model.max_length
    )
    measured = {}
    for split, table in tables.items():
        batches = (collate(batch) for batch in table_batches(table, EVAL_BATCH))
        counts, _ = evaluate_with_confusion(model, batches, task, label_names)
        measured[split] = (task.metrics(counts, label_names), task.report(counts, label_names))
    return measured


def over_split_labels(
    metrics: dict[str, Any], per_label: list[dict[str, Any]], metric: str
) -> dict[str, Any]:
    """`metrics` with macro-F1 averaged over the labels the split holds. Everywhere else a
    label counts where it is predicted too; on a split of old labels that would count each
    new label the model answers there as a label of F1 0 (17 new intents answered now and
    then on old rows took 16 points off a Banking77 macro-F1 whose accuracy fell 0.2). A
    new label answered on an old row still costs that row's label its recall."""
    if metric != "macro_f1":
        return metrics
    held = [row["f1"] for row in per_label if row["support"]]
    return {**metrics, "macro_f1": float(np.mean(held)) if held else 0.0}


def report(parent, evaluations, splits, recipe) -> dict[str, Any]:
    """Before (the parent) and after (the continued model) on the parent's test split and
    the new one, per label on the old, and the promotion gate's verdict."""
    from fulcrum.tasks import TASKS

    task = TASKS[recipe.task.type]
    names = splits.label_names
    before = measure(parent, {"old_test": splits.old_test, "test": splits.test}, names, recipe)
    after_old = evaluations["old_test"]
    old_after_report = {row["label"]: row for row in task.report(after_old.counts, names)}
    per_label = [
        {
            "label": row["label"],
            "support": row["support"],
            "parent_f1": row["f1"],
            "continued_f1": old_after_report[row["label"]]["f1"],
        }
        for row in before["old_test"][1]
        if row["support"]
    ]
    after_new = evaluations["test"]
    old = {
        "parent": over_split_labels(*before["old_test"], recipe.metric),
        "continued": over_split_labels(
            after_old.metrics, task.report(after_old.counts, names), recipe.metric
        ),
    }
    new = {
        "parent": over_split_labels(*before["test"], recipe.metric),
        "continued": over_split_labels(
            after_new.metrics, task.report(after_new.counts, names), recipe.metric
        ),
    }
    return {
        "parent": str(parent.path),
        "new_labels": names[len(parent.labels) :],
        "replayed_rows": splits.replayed,
        "distill": recipe.continual.distill,
        "old_test": {"rows": splits.old_test.num_rows, **old, "per_label": per_label},
        "new_test": {"rows": splits.test.num_rows, **new},
        "gate": gate(recipe.metric, old, new, recipe.continual.max_old_drop),
    }


def describe(continued: dict[str, Any]) -> list[str]:
    """The report's lines for the training log."""
    verdict = continued["gate"]
    metric = verdict["metric"]
    old, new = continued["old_test"], continued["new_test"]
    lines = [
        f"old test (the parent's, {old['rows']:,} rows): {metric} {old['parent'][metric]:.3f} "
        f"-> {old['continued'][metric]:.3f} ({-verdict['old_drop_points']:+.1f} points; "
        f"continual.max_old_drop {verdict['max_old_drop']:g})",
        f"new test ({new['rows']:,} rows): {metric} {new['parent'][metric]:.3f} (the parent) "
        f"-> {new['continued'][metric]:.3f} ({verdict['new_gain_points']:+.1f} points)",
    ]
    worst = sorted(old["per_label"], key=lambda row: row["continued_f1"] - row["parent_f1"])[:3]
    if worst:
        lines.append(
            "old labels that lost most (F1): "
            + ", ".join(
                f"{row['label']} {row['parent_f1']:.2f} -> {row['continued_f1']:.2f}"
                for row in worst
            )
        )
    lines.append(
        "promotion gate: passed"
        if verdict["passed"]
        else "promotion gate: refused: " + "; ".join(verdict["reasons"])
    )
    return lines


def refusal(verdict: dict[str, Any]) -> dict[str, Any]:
    """The gate's refusal as a blocking training finding (fulcrum.diagnosis): the model is
    not exported or served unless forced, and the reasons travel with it."""
    return {
        "kind": "forgetting",
        "blocking": True,
        "text": "promotion gate: " + "; ".join(verdict["reasons"]),
        "try": [
            "raise continual.replay (more of the parent's rows rehearsed)",
            "lower train.lr or train.epochs (smaller steps away from the parent)",
            "or, if the loss is acceptable, raise continual.max_old_drop",
        ],
    }
