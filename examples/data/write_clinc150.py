"""CLINC150's data_full.json (../shared/data/clinc150) as the JSONL files
examples/clinc150.yaml reads: train (15,000 in-scope + 100 out-of-scope texts), validation
(3,000 + 100) and test (4,500 + 1,000), out-of-scope rows labelled `oos`. Written under
artifacts/data/clinc150, which is not committed (the data's licence: CC BY 3.0).

    python examples/data/write_clinc150.py [--source PATH/data_full.json]
"""

import argparse
import json
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
SOURCE = REPOSITORY.parent / "shared" / "data" / "clinc150" / "data_full.json"
TARGET = REPOSITORY / "artifacts" / "data" / "clinc150"
SPLITS = {
    "train": ("train", "oos_train"),
    "validation": ("val", "oos_val"),
    "test": ("test", "oos_test"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=SOURCE)
    args = parser.parse_args()
    full = json.loads(args.source.read_text())
    TARGET.mkdir(parents=True, exist_ok=True)
    for split, keys in SPLITS.items():
        rows = [row for key in keys for row in full[key]]
        staging = TARGET / f".{split}.jsonl.partial"
        with open(staging, "w") as handle:
            for text, label in rows:
                handle.write(json.dumps({"text": text, "label": label}) + "\n")
        staging.replace(TARGET / f"{split}.jsonl")
        print(f"{TARGET / f'{split}.jsonl'}: {len(rows)} rows")


if __name__ == "__main__":
    main()
