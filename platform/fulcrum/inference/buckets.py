"""Batches cut by length, so a short text is not padded to the longest one beside it.

A batch costs ONNX Runtime about its row count times its longest row in tokens: padding is
computed like text. Financial news sentences run up to 64 tokens (31 on average), so a batch
of 16 padded to its longest row computes 1.9x the tokens it holds, and on 2 CPU cores
batches of 16 ran slower per text than single texts. Sorted by length and cut into runs of
similar length, the same batches compute 1.08x their tokens and run 1.5x (batches of 16)
to 1.6x (64) faster: `python benchmarks/length_groups.py`.
"""

from __future__ import annotations

# What one more ONNX Runtime call costs, in tokens of work: its fixed overhead (operator
# dispatch, dynamic quantisation of each activation). On MiniLM INT8, 2 threads, batches of
# 8 to 64 FPB texts ran equally fast with any value from 8 to 32, and 20% slower with 0
# (a call per distinct length).
CALL_COST_TOKENS = 16
# Rows per call at most: bounds a call's memory when a caller hands over thousands of texts,
# and the search to O(rows x MAX_GROUP_ROWS). A full group pays one call cost per 64 rows.
MAX_GROUP_ROWS = 64


def length_groups(lengths: list[int], call_cost: int = CALL_COST_TOKENS) -> list[list[int]]:
    """Indices of `lengths` in groups to run one call each, with the least total work
    (rows x longest row, plus `call_cost` per call). The groups are contiguous runs of the
    indices sorted by length of at most MAX_GROUP_ROWS, so the best such cut is found
    exactly by dynamic programming over the sorted lengths."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    ordered = [lengths[index] for index in order]
    # best[end]: least work for ordered[:end]; cut[end]: where its last group starts.
    best = [0] * (len(ordered) + 1)
    cut = [0] * (len(ordered) + 1)
    for end in range(1, len(ordered) + 1):
        longest = ordered[end - 1]
        best[end], cut[end] = min(
            (best[start] + call_cost + (end - start) * longest, start)
            for start in range(max(0, end - MAX_GROUP_ROWS), end)
        )
    groups = []
    end = len(ordered)
    while end > 0:
        groups.append(order[cut[end] : end])
        end = cut[end]
    return groups[::-1]
