"""The slash command's grammar: every verb, bad arguments, unknown verbs with a did-you-mean."""

from __future__ import annotations

import pytest

from chatops.grammar import VERBS, Command, UsageError, help_text, parse


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Command("help", {})),
        ("help", Command("help", {})),
        ("status", Command("status", {})),
        (
            "status acme/pipelines production",
            Command("status", {"repo": "acme/pipelines", "env": "production"}),
        ),
        ("runs acme/pipelines", Command("runs", {"repo": "acme/pipelines"})),
        ("logs 3f2a9c1e", Command("logs", {"run": "3f2a9c1e"})),
        ("rerun acme/pipelines", Command("rerun", {"repo": "acme/pipelines"})),
        (
            "RERUN acme/pipelines feature/x",
            Command("rerun", {"repo": "acme/pipelines", "branch_or_env": "feature/x"}),
        ),
        ("cancel 3f2a", Command("cancel", {"run": "3f2a"})),
        ("services", Command("services", {})),
        ("delete serve production", Command("delete", {"service": "serve", "env": "production"})),
        ("  delete   serve  ", Command("delete", {"service": "serve"})),
    ],
)
def test_each_verb_parses(text: str, expected: Command) -> None:
    assert parse(text) == expected


def test_an_unknown_verb_suggests_the_closest() -> None:
    with pytest.raises(UsageError) as caught:
        parse("rerum acme/pipelines")
    assert "Unknown command `rerum` (did you mean `rerun`?)" in str(caught.value)
    assert "/bodywork help|status|runs|logs|rerun|cancel|services|delete" in str(caught.value)


def test_missing_and_extra_arguments_show_the_usage_line() -> None:
    with pytest.raises(UsageError) as missing:
        parse("logs", command="/deploy")
    assert str(missing.value) == "`logs` needs RUN.\nUsage: /deploy logs RUN"
    with pytest.raises(UsageError) as extra:
        parse("cancel a b")
    assert "`b` is too many" in str(extra.value) and "Usage: /bodywork cancel RUN" in str(extra.value)


def test_help_lists_every_verb() -> None:
    text = help_text("/bodywork")
    assert all(f"/bodywork {verb.name}" in text for verb in VERBS)
    assert "`/bodywork rerun REPO [branch_or_env]`" in text
