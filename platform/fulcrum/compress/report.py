"""The compression report: every variant beside PyTorch fp32 eager, as a Markdown table,
JSON, and a plot of the test metric against latency; and which deployable variant to
serve (the fastest at batch 32 among those that passed the gate)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fulcrum.artifacts import write_json_atomic

BASELINE = "pytorch-fp32"


def write_report(
    staging: Path, rows: list[dict[str, Any]], name: str, metric: str, threads: int
) -> dict[str, Any]:
    baseline = next(row for row in rows if row["variant"] == BASELINE)
    for row in rows:
        row["size_ratio"] = row["size_mb"] / baseline["size_mb"]
        row["batch1_speedup"] = baseline["batch1_p50_ms"] / row["batch1_p50_ms"]
        row["batch32_speedup"] = row["throughput_per_s"] / baseline["throughput_per_s"]
    deployable = [row for row in rows if row["deployable"]]
    recommended = max(deployable, key=lambda row: row["throughput_per_s"], default=None)
    summary = {
        "metric": metric,
        "threads": threads,
        "variants": rows,
        "recommended": recommended["variant"] if recommended else None,
    }
    write_json_atomic(staging / "report.json", summary)
    (staging / "report.md").write_text(
        markdown(rows, name, metric, threads, summary["recommended"])
    )
    plot(staging / "report.png", rows, name, metric)
    return summary


def markdown(
    rows: list[dict], name: str, metric: str, threads: int, recommended: str | None
) -> str:
    header = (
        f"| variant | deployable | MB | size | val {metric} | test {metric} | max drop (pts) "
        "| max abs dlogit | b1 p50 ms | b1 p95 ms | b32 p50 ms | b32 p95 ms | texts/s | "
        "b1 speed-up | b32 speed-up |"
    )
    lines = [
        f"# Compression report: {name}",
        "",
        f"Each variant against PyTorch fp32 eager on the same tokenised validation texts, "
        f"{threads} thread(s); metrics on the validation and test splits with the training "
        "code's metric functions. Speed-ups are against PyTorch (b1: p50 latency, b32: "
        "throughput).",
        "",
        header,
        "|" + "---|" * (header.count("|") - 1),
    ]
    for row in rows:
        state = {None: "(parent)", True: "yes", False: "**no**"}[row["deployable"]]
        lines.append(
            "| "
            + " | ".join(
                [
                    row["variant"],
                    state,
                    f"{row['size_mb']:.1f}",
                    f"{row['size_ratio']:.2f}x",
                    _number(row.get(f"validation_{metric}")),
                    _number(row.get(f"test_{metric}")),
                    _number(row.get("max_metric_drop_points"), "+.2f"),
                    _number(row.get("max_abs_logit_diff"), ".2e"),
                    f"{row['batch1_p50_ms']:.1f}",
                    f"{row['batch1_p95_ms']:.1f}",
                    f"{row['batch32_p50_ms']:.1f}",
                    f"{row['batch32_p95_ms']:.1f}",
                    f"{row['throughput_per_s']:.0f}",
                    f"{row['batch1_speedup']:.2f}x",
                    f"{row['batch32_speedup']:.2f}x",
                ]
            )
            + " |"
        )
    refused = [row for row in rows if row["deployable"] is False]
    lines.append("")
    if refused:
        lines.append("Not deployable:")
        lines += [f"- {row['variant']}: {row['not_deployable_because']}" for row in refused]
        lines.append("")
    lines.append(
        f"Recommended: **{recommended}** (the fastest deployable variant at batch 32)."
        if recommended
        else "No variant passed the gate."
    )
    return "\n".join(lines) + "\n"


def plot(path: Path, rows: list[dict], name: str, metric: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for axis, latency, label in (
        (axes[0], "batch1_p50_ms", "batch 1: p50 latency (ms)"),
        (axes[1], "batch32_p50_ms", "batch 32: p50 latency (ms)"),
    ):
        for row in rows:
            colour = {None: "#333", True: "#2a7", False: "#c33"}[row["deployable"]]
            marker = "s" if row["deployable"] is None else "o"
            value = row.get(f"test_{metric}")
            if value is None:
                continue
            axis.scatter(row[latency], value, color=colour, marker=marker, s=40)
            axis.annotate(
                row["variant"],
                (row[latency], value),
                fontsize=7,
                xytext=(4, 3),
                textcoords="offset points",
            )
        axis.set_xlabel(label)
        axis.set_ylabel(f"test {metric}")
        axis.grid(alpha=0.3)
    axes[0].scatter([], [], color="#2a7", label="deployable")
    axes[0].scatter([], [], color="#c33", label="not deployable")
    axes[0].scatter([], [], color="#333", marker="s", label="PyTorch fp32 (parent)")
    axes[0].legend(fontsize=8)
    figure.suptitle(f"{name}: metric against latency")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _number(value: Any, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)
