"""`explain(artifact, texts)`: attributions for the model in a training artifact (PyTorch:
Integrated Gradients, or occlusion) or an export artifact (ONNX Runtime: occlusion).

Sequence models explain the predicted label (or a label asked for); token models explain
each predicted entity: the target is the mean probability of the entity's predicted tags
at its words' first subwords, the same reading of the model the served spans come from.
Text-pair models explain a (text, text_pair) pair: the words of both sides are scored
together, in the one encoding the model reads.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fulcrum.errors import ArtifactError, FulcrumError
from fulcrum.explain.occlusion import occlusion_scores
from fulcrum.explain.words import Explanation, word_positions, word_scores
from fulcrum.words import Units, WordEncoder, token_units

METHODS = ("auto", "integrated_gradients", "occlusion")


class ExplainError(FulcrumError):
    pass


Text = str | tuple[str, str]


def explain(
    artifact_dir: str | Path,
    texts: list[Text],
    method: str = "auto",
    steps: int = 50,
    target: str | None = None,
) -> list[list[Explanation]]:
    """One list per text: one explanation for a sequence model (a text-pair model takes
    (text, text_pair) pairs), one per predicted entity for a token model (none when it
    found none)."""
    from fulcrum.artifacts import open_artifact

    if method not in METHODS:
        raise ExplainError(f"method: {method!r} is not one of {', '.join(METHODS)}")
    artifact = open_artifact(artifact_dir)
    check_texts(texts, artifact.manifest.task == "text_pair_classification")
    kind = artifact.kind
    if kind == "train":
        model = TorchModel(artifact)
        method = "integrated_gradients" if method == "auto" else method
    elif kind == "export":
        if method == "integrated_gradients":
            parent = (
                artifact.manifest.parent.path
                if artifact.manifest.parent
                else "its training artifact"
            )
            raise ExplainError(
                f"{artifact_dir}: an ONNX model has no gradients; explain it with occlusion, "
                f"or explain the PyTorch model in {parent} with integrated_gradients"
            )
        model = OnnxModel(artifact)
        method = "occlusion"
    else:
        raise ArtifactError(f"{artifact_dir}: a {kind} artifact has no model to explain")
    return [model.explain(text, method, steps, target) for text in texts]


def check_texts(texts: list[Text], pairs: bool) -> None:
    """A text-pair model explains pairs, any other model single texts."""
    for index, text in enumerate(texts):
        if pairs and not (
            isinstance(text, list | tuple)
            and len(text) == 2
            and all(isinstance(side, str) for side in text)
        ):
            raise ExplainError(
                f"texts[{index}]: a text-pair model explains (text, text_pair) pairs "
                f"(fulcrum explain: one --text-pair per TEXT), got {text!r}"
            )
        if not pairs and not isinstance(text, str):
            raise ExplainError(f"texts[{index}]: this model explains single texts, got {text!r}")


class _Model:
    """What both back ends share: tokenising with offsets, choosing targets, occlusion."""

    labels: list[str]
    task: str
    tokenizer: Any
    mask_id: int
    max_length: int

    def probabilities(self, ids: np.ndarray, type_ids: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def encode(self, text: Text) -> Units:
        """The text as the model reads it, in explanation units: a tagger's words as it is
        served them, a classifier's words from its own tokenisation (fulcrum.words), a
        pair's words from its pair encoding (segment ids and truncation as served)."""
        if self.task == "token_classification":
            return self._words.encode_texts([text], self.max_length)[0]
        if not isinstance(text, str):
            text = tuple(text)
            return token_units(text, self.tokenizer.encode(*text))
        return token_units(text, self.tokenizer.encode(text))

    @functools.cached_property
    def _words(self) -> WordEncoder:
        return WordEncoder(self.tokenizer)

    def explain(self, text: Text, method: str, steps: int, target: str | None):
        encoding = self.encode(text)
        if not any(word is not None for word in encoding.word_ids):
            raise ExplainError("texts: an empty text has no words to explain")
        type_ids = np.asarray([encoding.type_ids], dtype=np.int64)
        full = self.probabilities(np.asarray([encoding.ids], dtype=np.int64), type_ids)[0]
        sides = (text,) if isinstance(text, str) else tuple(text)
        targets = self._targets(sides[0], encoding, full, target)
        explanations = []
        for name, span, pick in targets:
            if method == "occlusion":
                probability, words = occlusion_scores(
                    sides,
                    encoding,
                    lambda ids, pick=pick: pick(
                        self.probabilities(ids, np.broadcast_to(type_ids, ids.shape))
                    ),
                    self.mask_id,
                )
                delta = None
            else:
                token_scores, delta, probability = self.integrated(encoding, pick, steps)
                words = word_scores(sides, encoding, token_scores)
            explanations.append(
                Explanation(
                    sides[0],
                    name,
                    probability,
                    method,
                    words,
                    delta=delta,
                    span=span,
                    text_pair=sides[1] if len(sides) > 1 else None,
                )
            )
        return explanations

    def _targets(self, text, encoding, full: np.ndarray, target: str | None):
        """(name, span, probabilities -> the target's probability per row) per target."""
        if self.task != "token_classification":
            if target is None:
                index = int(full.argmax())
            elif target in self.labels:
                index = self.labels.index(target)
            else:
                raise ExplainError(
                    f"target: {target!r} is not a label of this model ({', '.join(self.labels)})"
                )
            return [(self.labels[index], None, lambda rows, i=index: rows[:, i])]
        from fulcrum.inference.predictor import entity_spans

        words = word_positions(encoding)
        targets = []
        for entity in entity_spans(text, encoding, full, self.labels):
            firsts = [
                positions[0]
                for positions in words
                if entity["start"] <= encoding.offsets[positions[0]][0] < entity["end"]
            ]
            tags = [int(full[position].argmax()) for position in firsts]

            def pick(rows, firsts=firsts, tags=tags):
                return rows[:, firsts, tags].mean(axis=1)

            name = f"{entity['entity']} {entity['text']!r}"
            targets.append((name, (entity["start"], entity["end"]), pick))
        return targets

    def integrated(self, encoding, pick, steps):
        raise ExplainError(
            "integrated_gradients needs the PyTorch model: explain the training artifact"
        )


class OnnxModel(_Model):
    """Occlusion over an OnnxClassifier: a fresh one for an artifact, or the one a Serve
    replica already runs (`OnnxModel(predictor=...)`), sharing its session."""

    def __init__(self, artifact=None, predictor=None) -> None:
        from tokenizers import Tokenizer

        from fulcrum.inference import OnnxClassifier

        self.predictor = predictor or OnnxClassifier(artifact.path)
        self.labels, self.task = self.predictor.labels, self.predictor.task
        # A copy, so that explaining never changes how the predictor tokenises.
        self.tokenizer = Tokenizer.from_str(self.predictor.tokenizer.to_str())
        self.tokenizer.no_padding()
        self.mask_id = _mask_id(self.tokenizer)
        self.max_length = self.predictor.max_length

    def probabilities(self, ids: np.ndarray, type_ids: np.ndarray) -> np.ndarray:
        from fulcrum.metrics import softmax

        feed = {
            "input_ids": ids,
            "attention_mask": np.ones_like(ids),
            "token_type_ids": np.ascontiguousarray(type_ids),
        }
        inputs = {name: feed[name] for name in self.predictor.input_names}
        return softmax(self.predictor.session.run(["logits"], inputs)[0])


class TorchModel(_Model):
    def __init__(self, artifact) -> None:
        from tokenizers import Tokenizer
        from transformers import AutoTokenizer

        from fulcrum.compress.onnx_export import model_input_names
        from fulcrum.train.merge import TOKENIZER_DIR, load_merged

        self.task = artifact.manifest.task
        self.labels = artifact.labels
        self.model = load_merged(artifact.path, self.task).eval()
        # Segment ids go in only where training gave them (a DistilBERT takes none).
        self.takes_type_ids = "token_type_ids" in model_input_names(
            self.model, AutoTokenizer.from_pretrained(artifact.file(TOKENIZER_DIR))
        )
        self.tokenizer = Tokenizer.from_file(str(artifact.file(f"{TOKENIZER_DIR}/tokenizer.json")))
        self.max_length = int(artifact.manifest.settled_recipe["model"]["max_length"])
        self.tokenizer.enable_truncation(max_length=self.max_length)
        self.tokenizer.no_padding()
        self.mask_id = _mask_id(self.tokenizer)
        self.pad_id = self.model.config.pad_token_id or 0

    def probabilities(self, ids: np.ndarray, type_ids: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            tensor = torch.as_tensor(ids)
            logits = self.model(
                input_ids=tensor, attention_mask=torch.ones_like(tensor), **self._types(type_ids)
            ).logits
            return torch.softmax(logits, dim=-1).numpy()

    def _types(self, type_ids: np.ndarray) -> dict[str, Any]:
        import torch

        if not self.takes_type_ids:
            return {}
        return {"token_type_ids": torch.as_tensor(np.ascontiguousarray(type_ids))}

    def integrated(self, encoding, pick: Callable, steps: int):
        import torch

        from fulcrum.explain.integrated import integrated_gradients

        def target_of_logits(logits: torch.Tensor) -> torch.Tensor:
            return pick(torch.softmax(logits, dim=-1))

        return integrated_gradients(
            self.model,
            np.asarray(encoding.ids),
            np.asarray(encoding.attention_mask),
            np.asarray(encoding.special_tokens_mask, dtype=bool),
            self.pad_id,
            target_of_logits,
            steps=steps,
            token_type_ids=np.asarray(encoding.type_ids) if self.takes_type_ids else None,
        )


def _mask_id(tokenizer) -> int:
    for token in ("[MASK]", "<mask>", "[UNK]", "<unk>"):
        found = tokenizer.token_to_id(token)
        if found is not None:
            return found
    raise ExplainError("this tokenizer has no mask or unknown token to hide words with")
