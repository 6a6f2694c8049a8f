"""Readers for token classification: one tag per word.

CoNLL-style files (one `token ... tag` line per word, blank lines between sentences,
`-DOCSTART-` document markers) and JSONL with a list of tokens and a list of tags per line.
Both give a table with list columns `tokens` and `tags`. Files in other schemes are converted
to BIO on read, so the rest of Fulcrum sees one: IOB1 (CoNLL-2003, where B- only separates two
adjacent entities of one type), and BMES / BIOES (Chinese NER sets such as Resume, one character
per line, with E- ending and S- standing for a one-character entity).
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.json as pajson

from fulcrum.data.readers import MAX_LISTED_PROBLEMS, locate_read_error
from fulcrum.errors import DataError

TOKENS, TAGS = "tokens", "tags"
SCHEME_PREFIXES = {"bio": "BI", "iob1": "BI", "bmes": "BMES", "bioes": "BIES"}
TAG_PATTERNS = {
    scheme: re.compile(rf"^(O|[{prefixes}]-\S+)$") for scheme, prefixes in SCHEME_PREFIXES.items()
}
DOCUMENT_MARKER = "-DOCSTART-"


def read_tagged_file(
    path: str | Path,
    *,
    file_format: str,
    tokens_column: str = TOKENS,
    tags_column: str = TAGS,
    token_field: int = 0,
    tag_field: int = -1,
    encoding: str = "utf-8",
    scheme: str = "bio",
    declared_tags: list[str] | None = None,
) -> pa.Table:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    if file_format == "conll" or (file_format == "auto" and path.suffix.lower() != ".jsonl"):
        sentences = _read_conll(path, token_field, tag_field, encoding)
    else:
        sentences = _read_jsonl(path, tokens_column, tags_column)
    if not sentences:
        raise DataError(f"{path}: no sentences")
    _check_tags(path, sentences, scheme)
    convert = TO_BIO.get(scheme)
    if convert is not None:
        sentences = [(tokens, convert(tags), where) for tokens, tags, where in sentences]
    if declared_tags is not None:  # declared in the scheme Fulcrum works in: BIO
        _check_declared(path, sentences, declared_tags)
    return pa.table(
        {
            TOKENS: pa.array([tokens for tokens, _, _ in sentences], type=pa.list_(pa.string())),
            TAGS: pa.array([tags for _, tags, _ in sentences], type=pa.list_(pa.string())),
        }
    )


def iob1_to_bio(tags: list[str]) -> list[str]:
    """In IOB1 an entity starts with I- unless it directly follows one of the same type."""
    converted, previous = [], "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            tag = "B-" + tag[2:]
        converted.append(tag)
        previous = tag
    return converted


def spans_to_bio(tags: list[str]) -> list[str]:
    """BMES or BIOES to BIO. An entity starts at B- or S-, or at a continuation tag (M-, I-,
    E-) that does not continue an open entity of its type; it closes after E- or S-. Files
    with a stray M- still convert, as conlleval would read them."""
    converted, open_type = [], None
    for tag in tags:
        if tag == "O":
            converted.append(tag)
            open_type = None
            continue
        prefix, kind = tag[0], tag[2:]
        starts = prefix in "BS" or open_type != kind
        converted.append(("B-" if starts else "I-") + kind)
        open_type = None if prefix in "ES" else kind
    return converted


TO_BIO = {"iob1": iob1_to_bio, "bmes": spans_to_bio, "bioes": spans_to_bio}


def tag_order(tags: set[str]) -> list[str]:
    """O first, then by entity type with B- before I-: stable and readable label ids."""
    return ["O"] * ("O" in tags) + sorted(tags - {"O"}, key=lambda tag: (tag[2:], tag[0]))


# --------------------------------------------------------------------------- formats

Sentence = tuple[list[str], list[str], str]  # tokens, tags, "line N" / "row N" for errors


def _read_conll(path: Path, token_field: int, tag_field: int, encoding: str) -> list[Sentence]:
    sentences: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    start = 0
    try:
        handle = open(path, "rb")
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({error.strerror})") from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode(encoding).strip()
            except UnicodeDecodeError as error:
                raise DataError(
                    f"{path}, line {number}: bytes that are not valid {encoding} "
                    f"(0x{raw[error.start : error.start + 1].hex()} at byte {error.start + 1}); "
                    "set data.encoding"
                ) from None
            except LookupError:
                raise DataError(f"{path}: unknown encoding {encoding!r} (data.encoding)") from None
            fields = line.split()
            if not fields or fields[0] == DOCUMENT_MARKER:
                if tokens:
                    sentences.append((tokens, tags, f"line {start}"))
                tokens, tags = [], []
                continue
            needed = max(token_field, tag_field, -token_field - 1, -tag_field - 1) + 1
            if len(fields) < needed:
                raise DataError(
                    f"{path}, line {number}: {len(fields)} field(s), but the token and tag "
                    f"are fields {token_field} and {tag_field} (data.conll_token_field/_tag_field)"
                )
            if not tokens:
                start = number
            tokens.append(fields[token_field])
            tags.append(fields[tag_field])
    if tokens:
        sentences.append((tokens, tags, f"line {start}"))
    return sentences


def _read_jsonl(path: Path, tokens_column: str, tags_column: str) -> list[Sentence]:
    try:
        table = pajson.read_json(path)
        table.validate(full=True)
    except pa.ArrowInvalid as error:
        raise locate_read_error(path, "utf-8", error) from None
    for name in (tokens_column, tags_column):
        if name not in table.column_names:
            raise DataError(
                f"{path}: column {name!r} not found (columns: {', '.join(table.column_names)}); "
                "set data.tokens_column / data.tags_column"
            )
    sentences: list[Sentence] = []
    problems: list[str] = []
    for row, (tokens, tags) in enumerate(
        zip(
            table.column(tokens_column).to_pylist(),
            table.column(tags_column).to_pylist(),
            strict=True,
        ),
        start=1,
    ):
        if not isinstance(tokens, list) or not isinstance(tags, list):
            problems.append(f"row {row}: {tokens_column} and {tags_column} must be lists")
        elif not tokens:
            problems.append(f"row {row}: no tokens")
        elif len(tokens) != len(tags):
            problems.append(f"row {row}: {len(tokens)} tokens but {len(tags)} tags")
        else:
            sentences.append(([str(t) for t in tokens], [str(t) for t in tags], f"row {row}"))
    _raise_problems(path, problems)
    return sentences


def _check_tags(path: Path, sentences: list[Sentence], scheme: str) -> None:
    pattern = TAG_PATTERNS[scheme]
    problems = []
    for _, tags, where in sentences:
        for tag in tags:
            if not pattern.match(tag):
                problems.append(f"{where}: tag {tag!r} is not {_scheme_words(scheme)}")
                break
    if problems:
        problems[0] += _scheme_hint(sentences, scheme)
    _raise_problems(path, problems)


def _check_declared(path: Path, sentences: list[Sentence], declared: list[str]) -> None:
    allowed = set(declared)
    problems = []
    for _, tags, where in sentences:
        unknown = next((tag for tag in tags if tag not in allowed), None)
        if unknown is not None:
            problems.append(f"{where}: tag {unknown!r} is not in data.labels (declared in BIO)")
    _raise_problems(path, problems)


def _scheme_words(scheme: str) -> str:
    prefixes = SCHEME_PREFIXES[scheme]
    return (
        "O, " + ", ".join(f"{prefix}-TYPE" for prefix in prefixes) + f" (data.tag_scheme {scheme})"
    )


def _scheme_hint(sentences: list[Sentence], scheme: str) -> str:
    """Name the scheme the file's tags fit, when one does: BMES files read as BIO are the
    common mistake."""
    used = {tag[0] for _, tags, _ in sentences for tag in tags if tag != "O"}
    fitting = [
        name
        for name, prefixes in SCHEME_PREFIXES.items()
        if name != scheme and name != "iob1" and used <= set(prefixes)
    ]
    return f"; the file's tags fit data.tag_scheme: {fitting[0]}" if fitting else ""


def _raise_problems(path: Path, problems: list[str]) -> None:
    if problems:
        shown = "\n".join(f"  {line}" for line in problems[:MAX_LISTED_PROBLEMS])
        more = len(problems) - MAX_LISTED_PROBLEMS
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise DataError(f"{path}: {len(problems)} unusable sentence(s)\n{shown}{tail}")
