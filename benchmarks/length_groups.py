"""Batches cut by length against batches padded to their longest text: OnnxClassifier on
the FPB model's INT8 variant (the one served in serve_load.py), in one process, the two
ways interleaved round by round so a slow spell of the machine hits both.

    python benchmarks/length_groups.py [--batches 1 8 16 64] [--rounds 3] [--threads 2]

Texts/s per batch size, the median of the rounds; the tokens each way computes (text and
padding) beside the tokens the texts hold.
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import table, write_results
from serve_load import model_artifacts, validation_texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 16, 64])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0, help="per batch size and way")
    args = parser.parse_args()

    import fulcrum.inference.predictor as predictor_module
    from fulcrum.inference import OnnxClassifier
    from fulcrum.inference.buckets import length_groups

    train_dir, variant_dir = model_artifacts()
    texts = validation_texts(train_dir)
    predictor = OnnxClassifier(variant_dir, threads=args.threads, spin=False)
    lengths = [len(encoding.ids) for encoding in predictor.tokenizer.encode_batch(texts)]
    ways = {"padded": lambda sizes: [list(range(len(sizes)))], "length groups": length_groups}

    def texts_per_s(way: str, batch: int) -> float:
        predictor_module.length_groups = ways[way]
        chunks = [texts[i : i + batch] for i in range(0, len(texts) - batch + 1, batch)]
        for chunk in chunks[:3]:
            predictor.predict(chunk)
        started, done = time.perf_counter(), 0
        while time.perf_counter() - started < args.seconds:
            for chunk in chunks:
                predictor.predict(chunk)
                done += len(chunk)
        return done / (time.perf_counter() - started)

    runs: dict[tuple[str, int], list[float]] = {}
    try:
        for round_ in range(args.rounds):
            for batch in args.batches:
                for way in ways:
                    runs.setdefault((way, batch), []).append(texts_per_s(way, batch))
            print(f"[length groups] round {round_ + 1}/{args.rounds} done", flush=True)
    finally:
        predictor_module.length_groups = length_groups

    rows = [row_for(batch, lengths, runs) for batch in args.batches]
    print()
    print(
        table(
            rows,
            [
                ("batch", "batch"),
                ("padded_texts_per_s", "padded texts/s"),
                ("grouped_texts_per_s", "length groups texts/s"),
                ("speedup", "speed-up"),
                ("text_tokens", "text tokens"),
                ("padded_tokens", "tokens computed, padded"),
                ("grouped_tokens", "tokens computed, length groups"),
            ],
        )
    )
    path = write_results(
        "length_groups",
        {"model": str(variant_dir), "threads": args.threads, "texts": len(texts), "rows": rows},
    )
    print(f"wrote {path}")


def row_for(batch: int, lengths: list[int], runs: dict[tuple[str, int], list[float]]) -> dict:
    """The median rates of both ways at one batch size, and the tokens each computes."""
    from fulcrum.inference.buckets import length_groups

    chunks = [lengths[i : i + batch] for i in range(0, len(lengths) - batch + 1, batch)]
    padded = statistics.median(runs[("padded", batch)])
    grouped = statistics.median(runs[("length groups", batch)])
    return {
        "batch": batch,
        "padded_texts_per_s": padded,
        "grouped_texts_per_s": grouped,
        "speedup": grouped / padded,
        "text_tokens": sum(sum(chunk) for chunk in chunks),
        "padded_tokens": sum(len(chunk) * max(chunk) for chunk in chunks),
        "grouped_tokens": sum(
            len(group) * max(chunk[i] for i in group)
            for chunk in chunks
            for group in length_groups(chunk)
        ),
        "runs": {way: runs[(way, batch)] for way in ("padded", "length groups")},
    }


if __name__ == "__main__":
    main()
