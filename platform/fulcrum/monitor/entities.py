"""Which companies or topics a text is about: the entities its opinion is counted for.

Three sources, any together: a column that already names the entity (a feed that files each
post under a ticker), cashtags in the text (`$AAPL`), and a list of names the user gives
(`Apple Inc.` and `iPhone` both count for AAPL), matched as whole words, case-insensitively.
A text about two companies counts once for each; a text about none counts for none.

Cashtags of one letter ($T, $D, $C, $V) are often not about the company (SOURCE.md of the
StockNet data shows why); `min_cashtag_letters` leaves them out of the text, though a column
or a name list can still name the company.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from fulcrum.errors import DataError

CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z][A-Za-z.]{0,5})(?![\w])")


@dataclass(frozen=True)
class Attribution:
    """How texts are attributed to entities (the recipe's monitor.entities)."""

    column: str | None = None  # a column holding the entity, if the data has one
    cashtags: bool = True
    min_cashtag_letters: int = 2
    names: dict[str, str] = field(default_factory=dict)  # alias (lower case) -> entity
    only: frozenset[str] | None = None  # keep these entities and no others

    def __post_init__(self) -> None:
        aliases = sorted(self.names, key=len, reverse=True)  # longest first: "apple music"
        pattern = (
            re.compile(r"(?<!\w)(" + "|".join(re.escape(a) for a in aliases) + r")(?!\w)", re.I)
            if aliases
            else None
        )
        object.__setattr__(self, "_pattern", pattern)

    def entities(self, text: str, column_value: str | None = None) -> list[str]:
        """The entities of one text, each once, in the order first met."""
        found: list[str] = []
        if column_value:
            found += [part.strip().upper() for part in re.split(r"[,;|]", column_value)]
        if self.cashtags:
            for tag in CASHTAG.findall(text):
                tag = tag.rstrip(".").upper()
                if len(tag) >= self.min_cashtag_letters:
                    found.append(tag)
        if self._pattern is not None:
            found += [self.names[match.lower()] for match in self._pattern.findall(text)]
        unique = list(dict.fromkeys(name for name in found if name))
        if self.only is not None:
            unique = [name for name in unique if name in self.only]
        return unique


def read_names(path: str | Path) -> dict[str, str]:
    """A CSV of `entity,alias` rows (header required) -> alias (lower case) -> entity. Each
    entity also matches its own name."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: entity names file not found")
    names: dict[str, str] = {}
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"entity", "alias"} - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"{path}: needs columns entity and alias (missing {sorted(missing)})")
        for row in reader:
            entity, alias = (row["entity"] or "").strip(), (row["alias"] or "").strip()
            if not entity or not alias:
                raise DataError(
                    f"{path}, row {reader.line_num}: entity and alias must be non-empty"
                )
            previous = names.get(alias.lower())
            if previous is not None and previous != entity:
                raise DataError(
                    f"{path}, row {reader.line_num}: alias {alias!r} names both {previous!r} "
                    f"and {entity!r}"
                )
            names[alias.lower()] = entity
            names.setdefault(entity.lower(), entity)
    return names


def attribute(
    texts: Iterable[str], attribution: Attribution, column: Iterable[str | None] | None = None
) -> list[list[str]]:
    """Entities per text; `column`: each text's value of the entity column, if any."""
    if column is None:
        return [attribution.entities(text) for text in texts]
    return [attribution.entities(text, value) for text, value in zip(texts, column, strict=True)]
