"""Masks secret values wherever text leaves a run (log lines, failure reasons, EXCEPTION_MESSAGE).

The rule: a secret is masked wherever it stands as a word of its own, that is, where it is not glued
to letters, digits, ``_`` or ``-`` that continue it (``password=s3cret``, ``"s3cret"``, ``/s3cret/``
are masked; ``bodywork-gitops`` is not masked for the secret ``bodywork``: it is another word, and
masking it would both garble the text and tell the reader the secret). A value of 12 characters or
more is masked wherever it appears, inside other words too: such values (tokens, keys, generated
passwords) do not occur by chance, and one glued to other text is still a leak.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "********"
# Short values ("1", "yes") would mask ordinary words and numbers everywhere; they are not secrets.
_MIN_SECRET_LENGTH = 4
# Values at least this long are masked even inside other words.
_ALWAYS_MASKED_LENGTH = 12
_WORD = r"[\w-]"


def secret_pattern(value: str) -> str:
    """A regular expression matching the occurrences of `value` that the rule above masks."""
    escaped = re.escape(value)
    if len(value) >= _ALWAYS_MASKED_LENGTH:
        return escaped
    before = rf"(?<!{_WORD})" if re.match(_WORD, value[0]) else ""
    after = rf"(?!{_WORD})" if re.match(_WORD, value[-1]) else ""
    return f"{before}{escaped}{after}"


class Redactor:
    def __init__(self) -> None:
        self._sources: list[Iterable[str]] = []
        self._compiled: tuple[frozenset[str], re.Pattern[str] | None] = (frozenset(), None)

    def track(self, values: Iterable[str]) -> None:
        """Masks whatever `values` holds now or later (backends fill it as they resolve secrets)."""
        self._sources.append(values)

    def mask(self, text: str) -> str:
        pattern = self._pattern()
        return text if pattern is None else pattern.sub(MASK, text)

    def _pattern(self) -> re.Pattern[str] | None:
        secrets = frozenset(v for source in self._sources for v in source if len(v) >= _MIN_SECRET_LENGTH)
        if secrets != self._compiled[0]:
            # Longest first, so a secret that contains another is masked whole.
            ordered = sorted(secrets, key=len, reverse=True)
            pattern = re.compile("|".join(secret_pattern(v) for v in ordered)) if ordered else None
            self._compiled = (secrets, pattern)
        return self._compiled[1]
