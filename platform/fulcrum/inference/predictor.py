"""A classifier or tagger over an export artifact: `tokenizers` + ONNX Runtime + numpy.

Sequence models answer a label, its probability and every label's (and, with out-of-scope
detection, whether the text is none of the labels, with the score that decided); pair models
take (text, text_pair) tuples, and two-label ones also rank candidates for a query by the
probability of the second label; token models (NER)
answer entity spans with character offsets into the text, so a client can highlight them
without knowing how the model tokenises; a tagger reads the text in the words it was trained
on (fulcrum.words: a Chinese character is a word).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from fulcrum.artifacts import open_artifact
from fulcrum.errors import ArtifactError
from fulcrum.inference.buckets import length_groups
from fulcrum.inference.session import open_session
from fulcrum.metrics import bio_spans, softmax
from fulcrum.out_of_scope import Detector
from fulcrum.words import WordEncoder

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer/tokenizer.json"


class OnnxClassifier:
    def __init__(
        self,
        artifact_dir: str | Path,
        threads: int | None = None,
        verify: bool = True,
        spin: bool = True,
    ) -> None:
        from tokenizers import Tokenizer

        artifact = open_artifact(artifact_dir, kind="export", verify=verify)
        self.artifact = artifact
        self.labels: list[str] = artifact.labels
        self.task: str = artifact.manifest.task
        self.max_length: int = artifact.manifest.max_length
        self.tokenizer = Tokenizer.from_file(str(artifact.file(TOKENIZER_FILE)))
        _check_tokenizer_fits(
            self.tokenizer, artifact.manifest.vocab_size, artifact.file(TOKENIZER_FILE)
        )
        self.tokenizer.enable_truncation(max_length=self.max_length)
        self.tokenizer.no_padding()  # each length group is padded to its own longest text
        self.pad_id = self.tokenizer.token_to_id(_pad_token(artifact.path)) or 0
        self.words = WordEncoder(self.tokenizer)  # a tagger's words, as in training
        detector = artifact.manifest.out_of_scope
        self.out_of_scope = Detector.from_dict(detector) if detector else None

        self.session = open_session(artifact.file(MODEL_FILE), threads, spin=spin)
        self.input_names = [item.name for item in self.session.get_inputs()]

    def logits(self, texts: list[str] | list[tuple[str, str]]) -> np.ndarray:
        """[texts, labels] for a sequence classifier (texts, or (text, text_pair) tuples for
        a pair model: the tokenizer's pair format, as in training); one call per group of
        inputs of similar length (fulcrum.inference.buckets), rows back in their order."""
        return np.stack(self._run(self.tokenizer.encode_batch(texts)))

    def _run(self, encodings) -> list[np.ndarray]:
        """The model's logits for each encoding, in order, each as long as its own group's
        padding (a tagger's rows past the text's tokens are padding)."""
        rows: list[np.ndarray] = [np.empty(0)] * len(encodings)
        for group in length_groups([len(encoding.ids) for encoding in encodings]):
            arrays = self._arrays([encodings[index] for index in group])
            for index, row in zip(group, self.session.run(["logits"], arrays)[0], strict=True):
                rows[index] = row
        return rows

    def predict(self, texts: list[str] | list[tuple[str, str]]) -> list[dict[str, Any]]:
        if self.task == "token_classification":
            return self.tag(texts)
        logits = self.logits(texts)
        probabilities = softmax(logits)
        answers = [
            {
                "label": self.labels[int(row.argmax())],
                "score": float(row.max()),
                "probabilities": {name: float(p) for name, p in zip(self.labels, row)},
            }
            for row in probabilities
        ]
        if self.out_of_scope is not None:
            flagged, scores = self.out_of_scope.decide(logits, self.labels)
            for answer, outside, score in zip(answers, flagged, scores, strict=True):
                answer["out_of_scope"] = bool(outside)
                answer["in_scope_score"] = float(score)
        return answers

    def rank(self, query: str, candidates: list[str]) -> list[tuple[int, float]]:
        """(candidate index, score) best first: each (query, candidate) pair scored by the
        probability of the positive label, the second of a two-label pair model's."""
        if self.task != "text_pair_classification" or len(self.labels) != 2:
            raise ArtifactError(
                f"{self.artifact.path}: ranking needs a two-label text-pair model "
                f"(this is {self.task} with {len(self.labels)} labels)"
            )
        scores = softmax(self.logits([(query, candidate) for candidate in candidates]))[:, 1]
        order = np.argsort(-scores, kind="stable")
        return [(int(index), float(scores[index])) for index in order]

    def tag(self, texts: list[str]) -> list[dict[str, Any]]:
        encodings = self.words.encode_texts(texts, self.max_length)
        return [
            {"entities": entity_spans(text, encoding, softmax(logits), self.labels)}
            for text, encoding, logits in zip(texts, encodings, self._run(encodings), strict=True)
        ]

    def _arrays(self, encodings) -> dict[str, np.ndarray]:
        return padded_inputs(encodings, self.pad_id, self.input_names)


def padded_inputs(encodings, pad_id: int, input_names: list[str]) -> dict[str, np.ndarray]:
    """A session's inputs for `tokenizers` encodings of one batch, right-padded to the
    longest: what every ONNX Runtime caller here feeds."""
    length = max(len(encoding.ids) for encoding in encodings)
    shape = (len(encodings), length)
    arrays = {
        "input_ids": np.full(shape, pad_id, dtype=np.int64),
        "attention_mask": np.zeros(shape, dtype=np.int64),
        "token_type_ids": np.zeros(shape, dtype=np.int64),
    }
    for row, encoding in enumerate(encodings):
        size = len(encoding.ids)
        arrays["input_ids"][row, :size] = encoding.ids
        arrays["attention_mask"][row, :size] = 1
        arrays["token_type_ids"][row, :size] = encoding.type_ids
    return {name: arrays[name] for name in input_names}


def _check_tokenizer_fits(tokenizer, rows: int, where: Path) -> None:
    """Every file can be intact and the pair still wrong: a tokenizer copied from another
    model yields ids the embedding table (of `rows` rows) does not have, or silently
    different words."""
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    if size > rows:
        raise ArtifactError(
            f"{where}: {size} tokens, but the model's embedding has {rows} rows: this "
            "tokenizer is not the model's"
        )


def _pad_token(artifact_dir: Path) -> str:
    config_path = artifact_dir / "tokenizer" / "tokenizer_config.json"
    if config_path.is_file():
        pad = json.loads(config_path.read_text()).get("pad_token")
        if isinstance(pad, dict):
            pad = pad.get("content")
        if pad:
            return pad
    return "[PAD]"


def entity_spans(
    text: str, encoding, probabilities: np.ndarray, labels: list[str]
) -> list[dict[str, Any]]:
    """Entities in one text: type, [start, end) character offsets, the text they cover, and
    a score (the mean probability of the predicted tag over the entity's words). Each word
    takes the tag predicted at its first subword, as in training; words cut off by
    `max_length` are left untagged."""
    first_token: dict[int, int] = {}  # word -> its first subword position
    ends: dict[int, int] = {}  # word -> end offset of its last subword
    for position, word in enumerate(encoding.word_ids):
        if word is not None:
            first_token.setdefault(word, position)
            ends[word] = encoding.offsets[position][1]
    words = []  # (tag, probability, start, end), in text order
    for word, position in first_token.items():
        best = int(probabilities[position].argmax())
        start = encoding.offsets[position][0]
        words.append((labels[best], float(probabilities[position][best]), start, ends[word]))
    entities = []
    for kind, first, last in bio_spans([tag for tag, *_ in words]):
        start, end = words[first][2], words[last - 1][3]
        score = float(np.mean([words[i][1] for i in range(first, last)]))
        entities.append(
            {"entity": kind, "start": start, "end": end, "text": text[start:end], "score": score}
        )
    return entities
