"""``service.public_url``: where browsers, GitHub, GitLab and Slack reach the service, and so the path
prefix it is served under (``https://example.com/bodywork``: ``/bodywork``). Pure values.

Every link the service makes is this URL followed by a path (commit statuses, Slack messages, the API's
``url``) or its path followed by one (the pages' links and forms, redirects, the login cookie's path).
So it must be a base a path can be appended to: http or https and a host, no user or password (it is
shown in every commit status), no query or fragment, and a path of plain segments that need no escaping
in a link, a redirect or a cookie.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit, urlunsplit

from gitops.config_reader import ConfigReader

_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")
"""A segment of the path: RFC 3986's unreserved characters (the same in a link, a redirect and a
cookie's path, with nothing to escape)."""
_UNSAFE = re.compile(r"[^A-Za-z0-9._~-]+")
_EXAMPLE = "https://example.com/bodywork"


def path_prefix(public_url: str) -> str:
    """The path of `public_url` without a trailing slash: ``/bodywork``, or "" at the root of a host."""
    return urlsplit(public_url).path.rstrip("/")


def read_public_url(reader: ConfigReader, url: str, path: str = "service.public_url") -> str:
    """`url` without a trailing slash; a problem when it cannot be the base of the service's links."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (a port that is not a number raises)
    except ValueError as error:
        reader.problem(path, f"{url!r} is not a URL ({error}); write e.g. {_EXAMPLE!r}")
        return url
    problem = _base_problem(url, parts) or _path_problem(url, parts)
    if problem:
        reader.problem(path, problem)
    return url.rstrip("/")


def _base_problem(url: str, parts: SplitResult) -> str | None:
    clean = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path.rstrip("/"), "", ""))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        fix = f"https://{url}" if "://" not in url and url else _EXAMPLE
        return f"{url!r} is not an http:// or https:// URL with a host; write e.g. {fix!r}"
    if "@" in parts.netloc:  # the value itself is not repeated: it holds a password
        return (
            "holds a user name or password (before '@'), which every commit status and link would show; "
            f"write {clean!r}"
        )
    if parts.query or url.rstrip("/").endswith("?"):
        return (
            f"{url!r} has a query ('?{parts.query}'), which would land in the middle of every link made "
            f"from it; write {clean!r}"
        )
    if parts.fragment or "#" in url:
        return (
            f"{url!r} has a fragment ('#{parts.fragment}'), which would swallow the path of every link "
            f"made from it; write {clean!r}"
        )
    return None


def _path_problem(url: str, parts: SplitResult) -> str | None:
    """A problem with the path (the prefix) of `url`: only plain segments between single slashes."""
    segments = parts.path.rstrip("/").split("/")[1:]
    bad = [s for s in segments if not _SEGMENT.fullmatch(s) or s in (".", "..")]
    if not bad:
        return None
    fixed = [_UNSAFE.sub("-", s).strip("-") for s in segments]
    path = "".join(f"/{s}" for s in fixed if s and s not in (".", ".."))
    fix = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
    what = "an empty segment ('//')" if "" in bad else f"the segment {bad[0]!r}"
    return (
        f"{url!r} has {what} in its path, which would break the links made from it; use letters, digits "
        f"and - . _ ~ between single slashes: write {fix!r}"
    )
