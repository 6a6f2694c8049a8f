"""Ranking metrics against scikit-learn on random data, and that they add up over batches."""

import numpy as np
import pytest
from sklearn.metrics import ndcg_score, roc_auc_score

from fulcrum.ranking import SCORE_BINS, exact_auc, ranking_counts, ranking_metrics


def random_groups(seed: int, groups: int = 40):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 25, size=groups)
    keys = np.repeat(np.arange(groups), sizes)
    positive = rng.random(len(keys)) < 0.3
    # Scores that lean towards the positives, with ties (rounded) as real models give.
    scores = np.round(np.clip(0.5 * positive + rng.random(len(keys)) * 0.7, 0, 1), 3)
    return scores, positive, keys


def reference_metrics(scores, positive, keys) -> dict[str, float]:
    group_auc, reciprocal, ndcg5, ndcg10 = [], [], [], []
    for key in np.unique(keys):
        s, p = scores[keys == key], positive[keys == key]
        if p.any() and not p.all():
            group_auc.append(roc_auc_score(p, s))
        if p.any():
            order = np.argsort(-s, kind="stable")
            reciprocal.append(1.0 / (1 + np.argmax(p[order])))
            if len(s) > 1:  # sklearn's ndcg_score needs two candidates; one scores 1
                ndcg5.append(ndcg_score([p], [s], k=5, ignore_ties=True))
                ndcg10.append(ndcg_score([p], [s], k=10, ignore_ties=True))
            else:
                ndcg5.append(1.0)
                ndcg10.append(1.0)
    return {
        "auc": roc_auc_score(positive, scores),
        "group_auc": np.mean(group_auc),
        "mrr": np.mean(reciprocal),
        "ndcg_5": np.mean(ndcg5),
        "ndcg_10": np.mean(ndcg10),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_scikit_learn_on_random_groups(seed):
    scores, positive, keys = random_groups(seed)
    # Tied scores within a group: sklearn's ignore_ties keeps input order, as we do.
    measured = ranking_metrics(ranking_counts(scores, positive, list(keys)))
    expected = reference_metrics(scores, positive, keys)
    assert measured["auc"] == pytest.approx(expected["auc"], abs=1 / SCORE_BINS)
    for name in ("group_auc", "mrr", "ndcg_5", "ndcg_10"):
        assert measured[name] == pytest.approx(expected[name], abs=1e-9), name
    assert measured["groups"] == len(np.unique(keys))


def test_batches_of_whole_groups_add_up_to_the_whole():
    scores, positive, keys = random_groups(3)
    cut = int(np.searchsorted(keys, 20))  # keys are sorted: rows before group 20, and after
    parts = ranking_counts(scores[:cut], positive[:cut], list(keys[:cut])) + ranking_counts(
        scores[cut:], positive[cut:], list(keys[cut:])
    )
    whole = ranking_counts(scores, positive, list(keys))
    assert np.allclose(parts, whole)


def test_exact_auc_counts_ties_as_half_and_ungrouped_counts_have_only_auc():
    assert exact_auc(np.array([0.2, 0.2, 0.9]), np.array([True, False, True])) == 0.75
    metrics = ranking_metrics(ranking_counts(np.array([0.1, 0.8]), np.array([False, True])))
    assert metrics == {"auc": 1.0}


def test_evaluation_batches_end_where_a_group_ends():
    import pyarrow as pa

    from fulcrum.train.merge import table_batches

    grouped = pa.table({"group": list("aaabccd"), "row": list(range(7))})
    assert [batch["row"] for batch in table_batches(grouped, 2)] == [[0, 1, 2], [3, 4, 5], [6]]
    plain = pa.table({"row": list(range(7))})
    assert [batch["row"] for batch in table_batches(plain, 3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(table_batches(plain.slice(0, 0), 3)) == []


def test_the_prefilter_keeps_the_nearest_candidates_nearest_first_ties_in_order():
    from fulcrum.inference.embedder import nearest

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(30, 8))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    query, candidates = vectors[0], np.concatenate([vectors[1:], vectors[1:2]])  # a tie
    kept = nearest(query, candidates, 5)
    cosines = candidates @ query
    assert sorted(cosines[kept], reverse=True) == list(cosines[kept])
    assert set(kept) == set(np.argsort(-cosines)[:5])
    assert nearest(query, np.stack([query, query]), 1).tolist() == [0]


def test_the_embedding_cache_embeds_each_text_once_and_forgets_the_least_recent():
    from fulcrum.inference.embedder import EmbeddingCache

    class Counting:
        def __init__(self):
            self.seen = []

        def embed(self, texts):
            self.seen += texts
            return np.array([[float(len(text))] for text in texts])

    embedder = Counting()
    cache = EmbeddingCache(embedder, size=3)
    assert cache.embed(["a", "bb", "a"]).ravel().tolist() == [1.0, 2.0, 1.0]
    assert cache.embed(["bb", "ccc"]).ravel().tolist() == [2.0, 3.0]
    assert embedder.seen == ["a", "bb", "ccc"], "each text embedded once"
    cache.embed(["dddd"])  # over the size: "a", used least recently, goes
    cache.embed(["a"])
    assert embedder.seen[-1] == "a" and list(cache.vectors) == ["ccc", "dddd", "a"]
