"""Generated hostile requests: nesting, encodings, every field's wrong type, Git-invalid refs, bad ids.

Each generator yields :class:`Case` values (a request and, where the answer is certain, the status it
must get). They are classes of input built from rules, not a list of strings: every forbidden
character at several places, every field with every wrong type, every non-ASCII decimal digit.
"""

from __future__ import annotations

import copy
import json
import random
import sys
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .helpers import github_headers, github_push, gitlab_headers, gitlab_push

SHA = "c" * 40
ZERO = "0" * 40
REPOSITORY = "acme/pipelines"
PROJECT = "group/ml-project"
TRIGGER_LIMIT = 64 * 1024


@dataclass(frozen=True)
class Case:
    what: str
    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    expected: int | None = None
    """The status this input must get; None: anything below 500."""


# -- values --------------------------------------------------------------------------------------

WRONG_VALUES: tuple[Any, ...] = (
    None, True, False, 0, -1, 2**70, 1.5, float("1e308"), "", " ", [], {}, [SHA], {"id": SHA},
    "x" * 5000, "\u0000", "\ud800",
)
"""Every JSON type, empty and oversized values, NUL and a lone surrogate (sent as the escape \\ud800)."""

_FORBIDDEN_CHARS = [chr(c) for c in range(0x20)] + [" ", "\x7f", "~", "^", ":", "?", "*", "[", "\\"]


def invalid_branch_names() -> Iterator[str]:
    """Branch names Git refuses, each rule of ``git check-ref-format`` applied in several places."""
    for char in _FORBIDDEN_CHARS:
        yield f"feature/{char}x"
        yield f"feature/x{char}"
        yield f"feature{char}/x"
    for bad in ("..", "@{"):
        yield f"feature/a{bad}b"
        yield f"feature/{bad}"
    yield from (
        "feature/../../x", "feature/x.lock", "feature/.hidden", "feature/x.", "feature//x", "feature/x/",
        "/feature/x", "feature/x/.lock", "feature/a.lock/b", "feature/" + "x" * 100_000,
        "feature/" + "y" * 256, "feature/\ud800", "feature/\udfff",
    )


def valid_branch_names() -> Iterator[str]:
    yield from (
        "feature/x", "feature/a.b", "feature/a-b_c", "feature/ü", "feature/日本", "feature/a@b",
        "feature/x.lockx", "feature/a/b/c", "feature/{x}", "feature/" + "z" * 200, "feature/a,b",
        "feature/!#$%&'()+;<=>`|", "feature/x.lock.y",
    )


def bad_shas() -> Iterator[str]:
    yield from ("not-a-sha", SHA[:7], SHA[:12], SHA[:39], SHA + "c", SHA.upper(), "g" * 40, " " + SHA[1:],
                SHA[:20] + "\ud800" + SHA[21:], "c" * 63, "")


def non_ascii_digits() -> list[str]:
    """Every character Python's ``str.isdigit`` accepts that is not 0-9 (``²``, ``٣``, ...)."""
    return [chr(c) for c in range(0x80, sys.maxunicode + 1)
            if chr(c).isdigit() and unicodedata.category(chr(c)) != "Cs"][::7]


# -- bodies --------------------------------------------------------------------------------------


def dumps(value: Any) -> bytes:
    """JSON with lone surrogates written as escapes (what an attacker sends), not refused."""
    return json.dumps(value, ensure_ascii=True).encode()


def _paths(value: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield (*prefix, key)
            yield from _paths(inner, (*prefix, key))


def _replaced(
    payload: dict[str, Any], path: tuple[str, ...], value: Any, delete: bool = False
) -> dict[str, Any]:
    changed = copy.deepcopy(payload)
    target = changed
    for part in path[:-1]:
        target = target[part]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return changed


def every_field_wrong(payload: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """`payload` with each field, at every depth, missing or set to each wrong value."""
    for path in _paths(payload):
        name = ".".join(path)
        yield f"{name} missing", _replaced(payload, path, None, delete=True)
        for value in WRONG_VALUES:
            yield f"{name}={value!r:.30}", _replaced(payload, path, value)


def nested(depth: int, opener: str) -> bytes:
    closer = {"[": "]", "{": "}"}
    if opener == "{":
        return (b'{"a":' * depth) + b"1" + (b"}" * depth)
    if opener == "mixed":
        return (b'[{"a":' * (depth // 2)) + b"1" + (b"}]" * (depth // 2))
    return (opener * depth + closer[opener] * depth).encode()


def encodings(text: str) -> Iterator[tuple[str, bytes]]:
    """`text` (a JSON document) in encodings a webhook never uses, and broken UTF-8."""
    yield "utf-16", text.encode("utf-16")
    yield "utf-16-le", text.encode("utf-16-le")
    yield "utf-32", text.encode("utf-32")
    yield "utf-8 BOM", b"\xef\xbb\xbf" + text.encode()
    yield "latin-1 byte", text.replace('"main"', '"m\xe4in"').encode("latin-1")
    yield "overlong NUL", text.encode().replace(b"main", b"m\xc0\x80in")
    yield "encoded surrogate", text.encode().replace(b"main", b"m\xed\xa0\x80in")
    yield "truncated sequence", text.encode()[:-3] + b"\xe2\x82"
    yield "NUL byte", text.encode().replace(b"{", b"{\x00", 1)
    yield "cut in half", text.encode()[: len(text) // 2]


# -- cases per endpoint --------------------------------------------------------------------------


def github_case(what: str, body: bytes, secret: str, expected: int | None = None, **kw: Any) -> Case:
    return Case(what, "POST", "/webhooks/github", body, github_headers(body, secret, **kw), expected)


def gitlab_case(what: str, body: bytes, secret: str, expected: int | None = None) -> Case:
    return Case(what, "POST", "/webhooks/gitlab", body, gitlab_headers(secret), expected)


def trigger_case(what: str, body: bytes, token: str, expected: int | None = None) -> Case:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if expected is not None and len(body) > TRIGGER_LIMIT:
        expected = 413
    return Case(what, "POST", "/api/runs", body, headers, expected)


def nesting_cases(github: str, gitlab: str, token: str) -> Iterator[Case]:
    for depth in (1, 2, 10, 100, 500, 990, 1000, 1001, 5000, 50_000):
        for opener in ("[", "{", "mixed"):
            body = nested(depth, opener)
            what = f"nested {opener} x{depth}"
            yield github_case(what, body, github, 400)
            yield gitlab_case(what, body, gitlab, 400)
            yield trigger_case(what, body, token, 400)
            inner = b'{"ref": ' + body + b', "repository": "acme/pipelines"}'
            yield github_case(what + " in a field", inner, github, 400)
            yield trigger_case(what + " in a field", inner, token, 400)


INVALID_UTF8 = (b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xe2\x82", b"\xf8\x88\x80\x80\x80", b"\x80")
"""Byte sequences that are not UTF-8: a stray byte, an overlong NUL, an encoded surrogate, a cut
sequence, a five-byte form, a lone continuation byte."""
ESCAPES = (b"\\ud800", b"\\udfff\\ud800", b"\\u0000", b"\\u001b[31m", b"\\u202e", b"\\ufeff")
"""JSON escapes that are valid JSON but hostile text: lone surrogates, NUL, ESC, bidi override, BOM."""


def _string_paths(value: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for path in _paths(value, prefix):
        target = value
        for part in path:
            target = target[part]
        if isinstance(target, str):
            yield path


def field_encoding_cases(payload: dict[str, Any]) -> Iterator[tuple[str, bytes, int | None]]:
    """Every string field of `payload` holding each invalid UTF-8 sequence (400) and each hostile
    escape (anything below 500)."""
    marker = "@@HOSTILE@@"
    for path in _string_paths(payload):
        template = dumps(_replaced(payload, path, marker + "x"))
        for raw in INVALID_UTF8:
            yield f"{'.'.join(path)} bytes {raw!r}", template.replace(marker.encode(), raw), 400
        for escape in ESCAPES:
            yield f"{'.'.join(path)} escape {escape!r}", template.replace(marker.encode(), escape), None


def encoding_cases(github: str, gitlab: str, token: str) -> Iterator[Case]:
    push = github_push(REPOSITORY, "refs/heads/main", ZERO, SHA)
    lab = gitlab_push(PROJECT, "refs/heads/main", ZERO, SHA)
    trigger = {"repository": REPOSITORY, "ref": "main", "commit": SHA}
    for name, body in encodings(json.dumps(push)):
        yield github_case(f"github {name}", body, github, 400)
    for name, body in encodings(json.dumps(lab)):
        yield gitlab_case(f"gitlab {name}", body, gitlab, 400)
    for name, body in encodings(json.dumps(trigger)):
        yield trigger_case(f"trigger {name}", body, token, 400)
    for name, body, expected in field_encoding_cases(push):
        yield github_case(f"github {name}", body, github, expected)
    for name, body, expected in field_encoding_cases(lab):
        yield gitlab_case(f"gitlab {name}", body, gitlab, expected)
    for name, body, expected in field_encoding_cases(trigger):
        yield trigger_case(f"trigger {name}", body, token, expected)


def wrong_type_cases(github: str, gitlab: str, token: str) -> Iterator[Case]:
    push = github_push(REPOSITORY, "refs/heads/main", ZERO, SHA)
    tag = github_push(REPOSITORY, "refs/tags/v1", ZERO, "d" * 40, head_commit=SHA)
    lab = gitlab_push(PROJECT, "refs/heads/main", ZERO, SHA)
    trigger = {"repository": REPOSITORY, "ref": "main", "commit": SHA}
    for what, payload in every_field_wrong(push):
        yield github_case(f"github push {what}", dumps(payload), github)
    for what, payload in every_field_wrong(tag):
        yield github_case(f"github tag {what}", dumps(payload), github)
    for what, payload in every_field_wrong(lab):
        yield gitlab_case(f"gitlab {what}", dumps(payload), gitlab)
    for what, payload in every_field_wrong(trigger):
        yield trigger_case(f"trigger {what}", dumps(payload), token)
    for value in WRONG_VALUES:  # the whole body of the wrong type
        yield github_case(f"github body {value!r:.20}", dumps(value), github, 400)
        yield gitlab_case(f"gitlab body {value!r:.20}", dumps(value), gitlab, 400)
        yield trigger_case(f"trigger body {value!r:.20}", dumps(value), token, 400)


def ref_cases(github: str, gitlab: str, token: str) -> Iterator[Case]:
    for name in invalid_branch_names():
        for prefix in ("refs/heads/", "refs/tags/"):
            ref = prefix + name
            yield github_case(f"github ref {ref[:60]!r}", dumps(github_push(REPOSITORY, ref, ZERO, SHA)),
                              github, 400)
            yield gitlab_case(f"gitlab ref {ref[:60]!r}", dumps(gitlab_push(PROJECT, ref, ZERO, SHA)),
                              gitlab, 400)
        yield trigger_case(f"trigger ref {name[:60]!r}", dumps({"repository": REPOSITORY, "ref": name}),
                           token, 400)
    for sha in bad_shas():
        for field_name in ("after", "before"):
            payload = github_push(REPOSITORY, "refs/heads/main", SHA, SHA)
            payload[field_name] = sha
            yield github_case(f"github {field_name}={sha[:20]!r}", dumps(payload), github, 400)
            lab = gitlab_push(PROJECT, "refs/heads/main", SHA, SHA)
            lab[field_name] = sha
            yield gitlab_case(f"gitlab {field_name}={sha[:20]!r}", dumps(lab), gitlab, 400)
        tag = github_push(REPOSITORY, "refs/tags/v1", ZERO, "d" * 40, head_commit=sha or "x")
        yield github_case(f"github tag head_commit.id={sha[:20]!r}", dumps(tag), github, 400)
        lab = gitlab_push(PROJECT, "refs/tags/v1", ZERO, "d" * 40, checkout_sha=sha or "x", tag=True)
        yield gitlab_case(f"gitlab checkout_sha={sha[:20]!r}", dumps(lab), gitlab, 400)
        trigger = {"repository": REPOSITORY, "ref": "main", "commit": sha}
        yield trigger_case(f"trigger commit={sha[:20]!r}", dumps(trigger), token, 400)


PAGES = ("/api/runs/{}", "/api/runs/{}/logs?after=5", "/runs/{}", "/api/runs/{}/logs?format=text")


def query_cases(token: str = "") -> Iterator[Case]:
    bearer = {"Authorization": f"Bearer {token}"} if token else {}
    for digit in non_ascii_digits():
        quoted = "".join(f"%{b:02X}" for b in digit.encode())
        yield Case(f"limit={digit!r}", "GET", f"/api/runs?limit={quoted}", expected=400)
        if token:  # the audit needs the token: without it every case is a 401
            for name in ("limit", "before"):
                path = f"/api/audit?{name}={quoted}"
                yield Case(f"audit {name}={digit!r}", "GET", path, headers=bearer, expected=400)
        yield Case(f"after={digit!r}", "GET", f"/api/runs/nosuchrun/logs?after=1{quoted}")
    for value in ("99999999999999999999", "-1", "1.5", "", "0x10", "1e3", "%FF", "%00", "%C0%80", "0",
                  "1001", "9223372036854775808", "+5", " 5", "%E2%80%AE"):
        yield Case(f"limit={value!r}", "GET", f"/api/runs?limit={value}", expected=400 if value else None)
        yield Case(f"state={value!r}", "GET", f"/api/runs?state={value}")
        yield Case(f"pipeline={value!r}", "GET", f"/api/runs?pipeline={value}&repository={value}")
        for page in PAGES:
            yield Case(f"run id {value!r}", "GET", page.format(value or "x"))


def header_cases(github: str, gitlab: str) -> Iterator[Case]:
    body = dumps(github_push(REPOSITORY, "refs/heads/main", ZERO, SHA))
    signed = github_headers(body, github)
    variants: list[tuple[str, dict[str, str], int | None]] = [
        ("no event", {k: v for k, v in signed.items() if k != "X-GitHub-Event"}, 400),
        ("no delivery", {k: v for k, v in signed.items() if k != "X-GitHub-Delivery"}, 400),
        ("long delivery", {**signed, "X-GitHub-Delivery": "d" * 5000}, 400),
        ("latin-1 delivery", {**signed, "X-GitHub-Delivery": "d\xe9livery"}, None),
        ("form encoded", {**signed, "Content-Type": "application/x-www-form-urlencoded"}, 400),
        ("odd content type", {**signed, "Content-Type": "application/json; charset=\xff"}, None),
        ("no signature", {k: v for k, v in signed.items() if k != "X-Hub-Signature-256"}, 401),
        ("sha1 signature", {**signed, "X-Hub-Signature-256": "sha1=" + "0" * 40}, 401),
        ("huge signature", {**signed, "X-Hub-Signature-256": "sha256=" + "f" * 9000}, 401),
        ("event ~", {**signed, "X-GitHub-Event": "\x7f~\xff"}, 200),
    ]
    for what, headers, expected in variants:
        yield Case(f"github header {what}", "POST", "/webhooks/github", body, headers, expected)
    lab = dumps(gitlab_push(PROJECT, "refs/heads/main", ZERO, SHA))
    good = gitlab_headers(gitlab)
    for what, headers, expected in [
        ("no token", {k: v for k, v in good.items() if k != "X-Gitlab-Token"}, 401),
        ("wrong token", {**good, "X-Gitlab-Token": gitlab + "x"}, 401),
        ("no uuid", {k: v for k, v in good.items() if k not in ("X-Gitlab-Event-UUID", "Idempotency-Key")},
         400),
        ("long key", {**good, "Idempotency-Key": "k" * 1000}, 400),
        ("other event", {**good, "X-Gitlab-Event": "Issue Hook"}, 200),
    ]:
        yield Case(f"gitlab header {what}", "POST", "/webhooks/gitlab", lab, headers, expected)


def random_cases(github: str, gitlab: str, token: str, count: int, seed: int = 13) -> Iterator[Case]:
    """Random bytes and random mutations of valid bodies (fixed seed: the same cases every run)."""
    rng = random.Random(seed)
    push = dumps(github_push(REPOSITORY, "refs/heads/main", ZERO, SHA))
    for n in range(count):
        if n % 2:
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        else:
            mutated = bytearray(push)
            for _ in range(rng.randrange(1, 8)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            body = bytes(mutated)
        kind = n % 3
        if kind == 0:
            yield github_case(f"random {n}", body, github)
        elif kind == 1:
            yield gitlab_case(f"random {n}", body, gitlab)
        else:
            yield trigger_case(f"random {n}", body, token)


def all_cases(github: str, gitlab: str, token: str) -> Iterator[Case]:
    yield from nesting_cases(github, gitlab, token)
    yield from encoding_cases(github, gitlab, token)
    yield from wrong_type_cases(github, gitlab, token)
    yield from ref_cases(github, gitlab, token)
    yield from query_cases(token)
    yield from header_cases(github, gitlab)
    yield from random_cases(github, gitlab, token, 600)
