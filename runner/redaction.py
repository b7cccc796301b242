"""Masks secret values wherever text leaves a run (log lines, failure reasons, EXCEPTION_MESSAGE)."""

from __future__ import annotations

from collections.abc import Iterable

MASK = "********"
# Short values ("1", "yes") would mask ordinary words and numbers everywhere; they are not secrets.
_MIN_SECRET_LENGTH = 4


class Redactor:
    def __init__(self) -> None:
        self._sources: list[Iterable[str]] = []

    def track(self, values: Iterable[str]) -> None:
        """Masks whatever `values` holds now or later (backends fill it as they resolve secrets)."""
        self._sources.append(values)

    def mask(self, text: str) -> str:
        secrets = {v for source in self._sources for v in source if len(v) >= _MIN_SECRET_LENGTH}
        # Longest first, so a secret that contains another is masked whole.
        for value in sorted(secrets, key=len, reverse=True):
            text = text.replace(value, MASK)
        return text
