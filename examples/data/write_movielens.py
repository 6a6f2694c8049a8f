"""MovieLens ratings -> (user history, candidate movie, like/dislike) pairs with a ranking group
per user: the data examples/movielens_ranker.yaml trains on.

    python examples/data/write_movielens.py [--source ../shared/data/movielens_small]

Per user, ratings are ordered by (timestamp, movieId) (15,790 ratings share a timestamp with
another of the same user). The earlier 80% are the history, the later 20% the candidates:
a candidate is `like` (rating >= 4) or `dislike` (<= 2.5); 3 to 3.5 say neither and are
dropped. The user text names the most recent liked and disliked titles of the history and
the genres the user liked most; the item text is the title, its genres and the tags users gave it. Only users
with at least one candidate of each label are kept: a ranking of one kind says nothing.

Writes artifacts/data/movielens/pairs.jsonl (user, history, candidate, movie_id, rating,
label), one file that Fulcrum splits by user (data.group_column: user), and a README.md with
the counts; not committed: MovieLens' terms allow research use only (its README.txt).
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import Counter, defaultdict
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
SOURCE = REPOSITORY.parent / "shared" / "data" / "movielens_small"
TARGET = REPOSITORY / "artifacts" / "data" / "movielens"
HISTORY_SHARE = 0.8
LIKE, DISLIKE = 4.0, 2.5
LIKED_SHOWN, DISLIKED_SHOWN, GENRES_SHOWN = 6, 3, 3
TAGS_SHOWN = 5


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:  # CRLF, quoted titles
        return list(csv.DictReader(handle))


def movie_texts(folder: Path) -> dict[str, str]:
    tags: dict[str, list[str]] = defaultdict(list)
    for row in read_csv(folder / "tags.csv"):
        tag = row["tag"].strip().lower()
        if tag and tag not in tags[row["movieId"]]:
            tags[row["movieId"]].append(tag)
    texts = {}
    for row in read_csv(folder / "movies.csv"):
        text = f"{row['title']}. Genres: {genres(row['genres'])}"
        if tags[row["movieId"]]:
            text += ". Tags: " + ", ".join(tags[row["movieId"]][:TAGS_SHOWN])
        texts[row["movieId"]] = text
    return texts


def genres(field: str) -> str:
    return "none listed" if field == "(no genres listed)" else field.replace("|", ", ")


def user_pairs(ratings: list[dict[str, str]], movies: dict[str, dict], items: dict[str, str]):
    """The pairs of one user's ratings (oldest first), or none when the held-out part does
    not hold both a like and a dislike."""
    cut = int(len(ratings) * HISTORY_SHARE)
    history, held_out = ratings[:cut], ratings[cut:]
    candidates = [
        row for row in held_out if float(row["rating"]) >= LIKE or float(row["rating"]) <= DISLIKE
    ]
    labels = {float(row["rating"]) >= LIKE for row in candidates}
    if labels != {True, False}:
        return []
    liked = [movies[row["movieId"]] for row in history if float(row["rating"]) >= LIKE]
    disliked = [movies[row["movieId"]] for row in history if float(row["rating"]) <= DISLIKE]
    text = "Liked: " + (
        "; ".join(m["title"] for m in reversed(liked[-LIKED_SHOWN:])) or "nothing yet"
    )
    if disliked:
        text += ". Disliked: " + "; ".join(m["title"] for m in reversed(disliked[-DISLIKED_SHOWN:]))
    favourite = Counter(genre for movie in liked for genre in movie["genres"])
    if favourite:
        text += ". Likes most: " + ", ".join(
            name for name, _ in favourite.most_common(GENRES_SHOWN)
        )
    return [
        {
            "user": row["userId"],
            "history": text,
            "candidate": items[row["movieId"]],
            "movie_id": row["movieId"],
            "rating": float(row["rating"]),
            "label": "like" if float(row["rating"]) >= LIKE else "dislike",
        }
        for row in candidates
    ]


def convert(folder: Path, output: Path) -> dict[str, int]:
    items = movie_texts(folder)
    movies = {
        row["movieId"]: {"title": row["title"], "genres": genres(row["genres"]).split(", ")}
        for row in read_csv(folder / "movies.csv")
    }
    by_user: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in read_csv(folder / "ratings.csv"):
        by_user[row["userId"]].append(row)
    pairs = []
    for user in sorted(by_user, key=int):
        ordered = sorted(
            by_user[user], key=lambda row: (int(row["timestamp"]), int(row["movieId"]))
        )
        pairs += user_pairs(ordered, movies, items)
    output.mkdir(parents=True, exist_ok=True)
    staging = output / ".pairs.jsonl.partial"
    with open(staging, "w", encoding="utf-8") as handle:
        for pair in pairs:
            handle.write(json.dumps(pair, ensure_ascii=False) + "\n")
    staging.replace(output / "pairs.jsonl")
    counts = {
        "users": len({pair["user"] for pair in pairs}),
        "pairs": len(pairs),
        "like": sum(pair["label"] == "like" for pair in pairs),
    }
    (output / "README.md").write_text(
        f"Built by examples/movielens_pairs.py from {folder}: {counts['pairs']:,} pairs "
        f"({counts['like']:,} like) of {counts['users']} users. MovieLens terms apply: "
        "research use only.\n"
    )
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=SOURCE, help="the ml-latest-small folder")
    parser.add_argument("--output", type=Path, default=TARGET)
    args = parser.parse_args()
    counts = convert(args.source, args.output)
    print(f"{args.output / 'pairs.jsonl'}: {counts['pairs']:,} pairs, {counts['users']} users")


if __name__ == "__main__":
    main()
