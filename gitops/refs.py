"""Git's own rules for reference names (``git check-ref-format``) and for commit ids. Pure.

A ref from a webhook or an API call becomes a preview environment's name, a branch in a mirror and a
line in logs and statuses; one that Git itself would refuse (``feature/../../x``, a newline, ``~``)
never gets that far. The rules are those of ``git check-ref-format`` (see its manual), plus two of
ours: the name must be valid Unicode (no lone surrogates, which cannot be written as UTF-8) and fit
in :data:`MAX_REF_BYTES` with no component over :data:`MAX_COMPONENT_BYTES` (a file name's limit).
"""

from __future__ import annotations

import re

MAX_REF_BYTES = 1024
MAX_COMPONENT_BYTES = 255
ZERO_SHA = "0" * 40

# Rule 4 and 5: control characters (< 0x20 and DEL), space, ~ ^ : ? * [ and backslash.
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
_SHA = re.compile(r"(?:[0-9a-f]{40}|[0-9a-f]{64})")
_DESCRIBED = {
    " ": "a space", "~": "'~'", "^": "'^'", ":": "':'", "?": "'?'", "*": "'*'", "[": "'['",
    "\\": "a backslash",
}


def ref_problem(name: str) -> str | None:
    """Why Git would refuse `name` as a full reference name (``refs/heads/x``), or None."""
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not valid Unicode (it holds a lone surrogate)"
    if not name:
        return "is empty"
    if size > MAX_REF_BYTES:
        return f"is {size} bytes long; at most {MAX_REF_BYTES} are allowed"
    if forbidden := _FORBIDDEN.search(name):
        char = forbidden.group()
        what = _DESCRIBED.get(char, f"the control character {char!r}")
        return f"contains {what}, which Git does not allow in a ref"
    return _structure_problem(name)


def _structure_problem(name: str) -> str | None:
    """Rules 1, 3 and 6 to 9: components, dots, slashes and ``@``."""
    if name == "@":
        return "is '@', which Git does not allow as a ref"
    if ".." in name:
        return "contains '..', which Git does not allow in a ref"
    if "@{" in name:
        return "contains '@{', which Git does not allow in a ref"
    if name.startswith("/") or name.endswith("/") or "//" in name:
        return "has an empty component (a leading, trailing or double '/')"
    if name.endswith("."):
        return "ends with '.', which Git does not allow"
    for component in name.split("/"):
        if component.startswith("."):
            return f"has a component starting with '.' ({component[:40]!r})"
        if component.endswith(".lock"):
            return f"has a component ending in '.lock' ({component[:40]!r})"
        if len(component.encode("utf-8")) > MAX_COMPONENT_BYTES:
            return f"has a component longer than {MAX_COMPONENT_BYTES} bytes"
    return None


def branch_problem(name: str) -> str | None:
    """Why `name` is not a valid short branch or tag name (``feature/x``), or None."""
    if name.startswith("-"):
        return "starts with '-', which Git does not allow in a branch name"
    return ref_problem(f"refs/heads/{name}")


def is_full_sha(value: str) -> bool:
    """A full commit id: 40 (SHA-1) or 64 (SHA-256) lower-case hexadecimal digits."""
    return _SHA.fullmatch(value) is not None


def sha_problem(value: str) -> str | None:
    if is_full_sha(value):
        return None
    shown = value[:60].encode("utf-8", "backslashreplace").decode()
    if re.fullmatch(r"[0-9a-fA-F]{4,39}", value):
        return f"is an abbreviated commit id ({shown!r}); give the full 40-character SHA"
    return f"must be a full 40-character commit SHA, not {shown!r}"
