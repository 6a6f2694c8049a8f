"""What a support team writes for its assistant: answer templates per intent, and a
knowledge base of questions and answers (or passages) for what no intent covers.

Both are small files a person edits, so they are read with Python's own csv/json/yaml, and
every problem names the file, the row or key, and the field.

Answers: a YAML or JSON mapping `intent: template`, or a CSV/JSONL file with columns
`intent` and `answer`. A template may name slots, `{first_name}`, filled from the request.

Knowledge base: a CSV, TSV or JSONL file with an `answer` column, and a `question` column
when the rows are question/answer pairs (the question is what is matched; its answer is
what is said). Rows with only `answer` (or `text`) are passages, matched and said as they are.
"""

from __future__ import annotations

import csv
import json
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fulcrum.errors import DataError


@dataclass(frozen=True)
class Entry:
    """One knowledge-base row: `matched` is what a question is compared with."""

    matched: str
    answer: str
    question: str | None
    row: int

    def to_dict(self) -> dict[str, Any]:
        return {"question": self.question, "answer": self.answer, "row": self.row}


def read_answers(path: str | Path, labels: list[str] | None = None) -> dict[str, str]:
    """intent -> template. `labels`: the model's; an intent it does not have is an error (a
    typo there would leave the real intent without its answer)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: answers file not found")
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml", ".json"):
        answers = _mapping(path)
    else:
        answers = {}
        for row, record in _records(path):
            intent, answer = (
                _field(path, row, record, "intent"),
                _field(path, row, record, "answer"),
            )
            if intent in answers:
                raise DataError(f"{path}, row {row}: intent {intent!r} has a second answer")
            answers[intent] = answer
    for intent, template in answers.items():
        slots(template, f"{path}: intent {intent!r}")  # a template that cannot be filled
    if labels is not None:
        unknown = sorted(set(answers) - set(labels))
        if unknown:
            raise DataError(
                f"{path}: intent {unknown[0]!r} is not one of the model's labels "
                f"({', '.join(labels[:12])}{', ...' if len(labels) > 12 else ''})"
            )
    return answers


def read_knowledge_base(path: str | Path) -> list[Entry]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: knowledge base file not found")
    entries = []
    for row, record in _records(path):
        if "answer" not in record and "text" not in record:
            raise DataError(f"{path}, row {row}: no `answer` (or `text`) field")
        answer = _field(path, row, record, "answer" if "answer" in record else "text")
        question = record.get("question")
        if question is not None and not str(question).strip():
            raise DataError(f"{path}, row {row}: field `question` is empty")
        question = None if question is None else str(question).strip()
        entries.append(Entry(question or answer, answer, question, row))
    if not entries:
        raise DataError(f"{path}: the knowledge base has no rows")
    return entries


def slots(template: str, where: str) -> list[str]:
    """The slot names a template uses, in order; a malformed template is an error."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise DataError(f"{where}: template {template!r} is malformed ({error})") from None
    names = []
    for _, name, _, _ in parsed:
        if name is not None:
            if not name.isidentifier():
                raise DataError(
                    f"{where}: slot {{{name}}} in {template!r} must be a plain name "
                    "(letters, digits, _); write {{ and }} for literal braces"
                )
            names.append(name)
    return names


def fill(template: str, values: dict[str, str]) -> tuple[str, list[str]]:
    """(the answer, the slots it still lacks): a missing slot stays as `{name}` so a person
    reading the answer sees what was not known, and the client can ask for it."""
    missing = [name for name in slots(template, "answer") if name not in values]
    known = {**values, **{name: "{" + name + "}" for name in missing}}
    return template.format_map(known), missing


def _mapping(path: Path) -> dict[str, str]:
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            content = json.loads(text)
        else:
            import yaml

            content = yaml.safe_load(text)
    except Exception as error:  # noqa: BLE001 - yaml and json raise their own kinds
        raise DataError(f"{path}: not readable ({str(error).splitlines()[0]})") from None
    if not isinstance(content, dict):
        raise DataError(f"{path}: expected a mapping of intent to answer template")
    answers = {}
    for intent, template in content.items():
        if not isinstance(template, str) or not template.strip():
            raise DataError(f"{path}: intent {intent!r}: the answer must be non-empty text")
        answers[str(intent)] = template.strip()
    return answers


def _records(path: Path):
    """(row number as a person counts it, record) for CSV, TSV or JSONL."""
    suffix = path.suffix.lower()
    with open(path, encoding="utf-8", newline="") as handle:
        if suffix in (".jsonl", ".json"):
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    raise DataError(f"{path}, line {number}: not valid JSON") from None
                if not isinstance(record, dict):
                    raise DataError(f"{path}, line {number}: expected a JSON object")
                yield number, record
        elif suffix in (".csv", ".tsv"):
            reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
            for record in reader:
                yield reader.line_num, {k: v for k, v in record.items() if k is not None}
        else:
            raise DataError(f"{path}: use a .csv, .tsv or .jsonl file")


def _field(path: Path, row: int, record: dict[str, Any], name: str) -> str:
    value = record.get(name)
    if value is None or not str(value).strip():
        raise DataError(f"{path}, row {row}: field `{name}` is missing or empty")
    return str(value).strip()
