"""TALLRec's movie prompts (../shared/data/tallrec_movie) as (user, movie, yes/no) pairs: the
few-shot setting of the paper, with 16, 64 or 256 training pairs drawn (seeded) from
valid.json, 200 more from it for validation, and test.json whole as the test split.

    python examples/data/write_tallrec.py [--shots 16 64 256] [--seed 0]

Each prompt's `input` holds the user ("User Preference: ...\\nUser Unpreference: ...") and
the target movie ("Whether the user will like the target movie "X"?"): the user lines are
the first text, the title the second, and `Yes.`/`No.` the label (`yes` is the positive,
the second in sorted order). Written under artifacts/data/tallrec/{shots}/, not committed:
MovieLens' terms (research use only) hold for the data.
"""

import argparse
import json
import random
import re
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
SOURCE = REPOSITORY.parent / "shared" / "data" / "tallrec_movie"
TARGET = REPOSITORY / "artifacts" / "data" / "tallrec"
VALIDATION_ROWS = 200
TARGET_MOVIE = re.compile(r'\nWhether the user will like the target movie "(.*)"\?\s*$', re.S)


def pair(record: dict[str, str], where: str) -> dict[str, str]:
    found = TARGET_MOVIE.search(record["input"])
    if found is None or record["output"] not in ("Yes.", "No."):
        raise SystemExit(f"{where}: not a TALLRec movie prompt: {record['input'][-80:]!r}")
    return {
        "user": record["input"][: found.start()].strip(),
        "movie": found.group(1),
        "label": record["output"].rstrip(".").lower(),
    }


def read(path: Path) -> list[dict[str, str]]:
    records = json.loads(path.read_text(encoding="utf-8"))
    return [pair(record, f"{path}, record {index + 1}") for index, record in enumerate(records)]


def write(path: Path, rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.partial")
    staging.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    staging.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--shots", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pool = read(args.source / "valid.json")
    test = read(args.source / "test.json")
    order = random.Random(args.seed).sample(range(len(pool)), len(pool))
    validation = [pool[index] for index in order[:VALIDATION_ROWS]]
    for shots in args.shots:
        train = [pool[index] for index in order[VALIDATION_ROWS : VALIDATION_ROWS + shots]]
        folder = TARGET / str(shots)
        write(folder / "train.jsonl", train)
        write(folder / "validation.jsonl", validation)
        write(folder / "test.jsonl", test)
        print(f"{folder}: {len(train)} training, {len(validation)} validation, {len(test)} test")


if __name__ == "__main__":
    main()
