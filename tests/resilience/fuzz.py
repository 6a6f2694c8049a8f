"""A seeded fuzzer of malformed HTTP requests, led by the application's own OpenAPI schema:
every route it lists, with every method, broken in the ways clients and scanners break
them (bytes that are not JSON or not UTF-8, JSON of the wrong shape or size, nesting deep
enough to exhaust a recursive parser, wrong content types and tokens, hostile model names).
Seeded, so a failure replays exactly."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import quote

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")
HOSTILE_NAMES = [
    "..",
    "../../etc/passwd",
    "%2e%2e%2f",
    "a" * 5000,
    "名前",
    "tiny\x00",
    "tiny;drop",
    "<script>",
    "${jndi:ldap://x}",
    " ",
    "TINY",
    "tiny/../tiny",
]


@dataclass
class Case:
    method: str
    path: str
    body: bytes | None
    headers: dict[str, str] = field(default_factory=dict)
    kind: str = ""


def cases(
    openapi: dict, models: list[str], token: str | None, count: int, seed: int
) -> Iterator[Case]:
    rng = random.Random(seed)
    routes = sorted(openapi["paths"])
    # Bodies go where the schema says one is read; any route gets any method.
    posts = [route for route in routes if "post" in openapi["paths"][route]]
    body_makers = [_broken_bytes, _wrong_shape, _oversized, _deep, _wrong_headers]
    for index in range(count):
        maker = _wrong_method if rng.random() < 0.15 else rng.choice(body_makers)
        route = rng.choice(routes if maker is _wrong_method else posts)
        name = rng.choice(models) if rng.random() < 0.7 else rng.choice(HOSTILE_NAMES)
        path = route.replace("{name}", quote(name, safe=""))
        case = maker(rng, path)
        case.headers.setdefault("content-type", "application/json")
        if token and "authorization" not in case.headers and rng.random() < 0.9:
            case.headers["authorization"] = f"Bearer {token}"
        case.kind = f"{index}:{case.kind}"
        yield case


def _broken_bytes(rng: random.Random, path: str) -> Case:
    valid = json.dumps({"texts": ["my apple", "the car"]}).encode()
    choice = rng.randrange(6)
    if choice == 0:
        body = rng.randbytes(rng.randrange(1, 400))
    elif choice == 1:
        body = valid[: rng.randrange(1, len(valid))]
    elif choice == 2:
        body = b'{"texts": ["\xff\xfe caf\xe9"]}'
    elif choice == 3:
        body = b'{"texts": ["a"], "texts": 5}'
    elif choice == 4:
        body = rng.choice([b"NaN", b"Infinity", b"-", b"1e999999", b"\xef\xbb\xbf{}", b""])
    else:
        body = bytearray(valid)
        for _ in range(rng.randrange(1, 6)):
            body[rng.randrange(len(body))] = rng.randrange(256)
        body = bytes(body)
    return Case("POST", path, body, kind="bytes")


def _wrong_shape(rng: random.Random, path: str) -> Case:
    shapes = [
        [],
        None,
        "texts",
        42,
        {"texts": "one string"},
        {"texts": []},
        {"texts": [1, 2, 3]},
        {"texts": [None]},
        {"texts": [["nested"]]},
        {"texts": [{"text": "x"}]},
        {"texts": [""]},
        {"texts": ["ok"], "extra": {"a": [1, 2]}},
        {"TEXTS": ["wrong case"]},
        {"texts": [True, 1.5]},
        {"texts": ["x" * rng.randrange(1, 50)] * rng.randrange(1, 100)},
        {"texts": {"0": "dict, not list"}},
    ]
    return Case("POST", path, json.dumps(rng.choice(shapes)).encode(), kind="shape")


def _oversized(rng: random.Random, path: str) -> Case:
    choice = rng.randrange(3)
    if choice == 0:
        body = json.dumps({"texts": ["word " * rng.randrange(100, 3000)]}).encode()
    elif choice == 1:
        body = json.dumps({"texts": ["t"] * rng.randrange(9, 2000)}).encode()
    else:
        body = b'{"texts": ["' + b"a" * rng.randrange(4000, 200_000) + b'"]}'
    return Case("POST", path, body, kind="size")


def _deep(rng: random.Random, path: str) -> Case:
    depth = rng.choice([100, 1000, 5000])
    opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
    inner = opener * depth + "1" + closer * depth
    return Case("POST", path, ('{"texts": ' + inner + "}").encode(), kind="deep")


def _wrong_headers(rng: random.Random, path: str) -> Case:
    body = json.dumps({"texts": ["my apple"]}).encode()
    headers = rng.choice(
        [
            {"content-type": "text/plain"},
            {"content-type": "application/x-www-form-urlencoded"},
            {"content-type": "multipart/form-data; boundary=x"},
            {"content-type": "application/json; charset=latin-1"},
            {"content-type": "application/json", "authorization": "Bearer wrong"},
            {"content-type": "application/json", "authorization": "Basic dXNlcjpwdw=="},
            {"content-type": "application/json", "authorization": "Bearer " + "x" * 5000},
            {"content-type": "application/json", "content-encoding": "gzip"},
        ]
    )
    return Case("POST", path, body, headers=dict(headers), kind="headers")


def _wrong_method(rng: random.Random, path: str) -> Case:
    body = json.dumps({"texts": ["my apple"]}).encode() if rng.random() < 0.5 else None
    return Case(rng.choice(METHODS), path, body, kind="method")
