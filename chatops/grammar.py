"""The slash command's grammar: ``/bodywork VERB [ARG ...]`` into a :class:`Command`. Pure.

A verb is one row of :data:`VERBS`: adding a verb is adding a row and a handler. A verb may have
sub-verbs, named by two words (``schedules history``, ``schedules run``); the two words are looked up
first, so a sub-verb's name wins over the plain verb's first argument. Bad input raises
:class:`UsageError` with the usage line and a "did you mean".
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Arg:
    name: str
    required: bool = True


@dataclass(frozen=True)
class Verb:
    name: str
    args: tuple[Arg, ...]
    summary: str
    changes: bool = False
    """Changes something (rerun, cancel, delete, schedules run): denied unless a grant allows it."""
    grant: str = ""
    """The grant verb a changing verb needs (default: its own name)."""

    @property
    def needs(self) -> str:
        return self.grant or self.name

    @property
    def usage(self) -> str:
        parts = [self.name] + [f"{a.name.upper()}" if a.required else f"[{a.name}]" for a in self.args]
        return " ".join(parts)


VERBS: tuple[Verb, ...] = (
    Verb("help", (), "what you can ask"),
    Verb("status", (Arg("repo", False), Arg("env", False)), "the latest run of each environment"),
    Verb("runs", (Arg("repo", False), Arg("env", False)), "recent runs, newest first"),
    Verb("logs", (Arg("run"),), "the end of a run's logs"),
    Verb(
        "rerun",
        (Arg("repo"), Arg("branch_or_env", False)),
        "run a branch's (or environment's) commit again",
        True,
    ),
    Verb("cancel", (Arg("run"),), "cancel a queued or running run", True),
    Verb("services", (Arg("repo", False), Arg("env", False)), "services deployed by the latest runs"),
    Verb("delete", (Arg("service"), Arg("env", False)), "delete a deployed service", True),
    Verb(
        "schedules",
        (Arg("repo", False), Arg("env", False)),
        "each schedule: where it is declared, cron, next and last fire",
    ),
    Verb("schedules history", (Arg("env"),), "a schedule's recent fires, missed and skipped ones too"),
    Verb(
        "schedules run",
        (Arg("id"),),
        "fire a schedule now (its concurrency policy applies; needs a `rerun` grant)",
        True,
        grant="rerun",
    ),
)
VERBS_BY_NAME = {verb.name: verb for verb in VERBS}
SUB_VERBS = {name.split()[1] for name in VERBS_BY_NAME if " " in name}
"""The second words of the two-word verbs (``history``, ``run``), for "did you mean"."""


@dataclass(frozen=True)
class Command:
    verb: str
    args: dict[str, str]

    @property
    def spec(self) -> Verb:
        return VERBS_BY_NAME[self.verb]

    def arg(self, name: str) -> str | None:
        return self.args.get(name)


class UsageError(Exception):
    """Shown to the user as an ephemeral message; never an error page."""

    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage

    def __str__(self) -> str:
        return f"{self.message}\nUsage: {self.usage}"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean `x`?)`` for the closest choice, or empty."""
    choices = list(choices)
    lowered = word.lower()
    prefixed = [c for c in choices if len(lowered) >= 3 and c.lower().startswith(lowered)]
    if len(prefixed) == 1:  # an abbreviation ("repo" for "repository")
        return f" (did you mean `{prefixed[0]}`?)"
    matches = difflib.get_close_matches(lowered, [c.lower() for c in choices], n=1, cutoff=0.6)
    if not matches:
        return ""
    original = next(c for c in choices if c.lower() == matches[0])
    return f" (did you mean `{original}`?)"


def parse(text: str, command: str = "/bodywork") -> Command:
    words = text.split()
    if not words:
        return Command("help", {})
    name, values = words[0].lower(), words[1:]
    two_words = " ".join(words[:2]).lower()
    if two_words in VERBS_BY_NAME:
        name, values = two_words, words[2:]
    verb = VERBS_BY_NAME.get(name)
    if verb is None:
        names = list(dict.fromkeys(v.name.split()[0] for v in VERBS))
        raise UsageError(
            f"Unknown command `{words[0]}`{did_you_mean(name, names)}.",
            f"{command} {'|'.join(names)} (try `{command} help`)",
        )
    usage = f"{command} {verb.usage}"
    required = [a for a in verb.args if a.required]
    if len(values) < len(required):
        missing = required[len(values)].name.upper()
        raise UsageError(f"`{verb.name}` needs {missing}.", usage)
    if len(values) > len(verb.args):
        extra = " ".join(values[len(verb.args) :])
        raise UsageError(
            f"`{verb.name}` takes at most {len(verb.args)} argument(s); `{extra}` is too many.", usage
        )
    return Command(verb.name, {arg.name: value for arg, value in zip(verb.args, values, strict=False)})


def help_text(command: str = "/bodywork") -> str:
    lines = [f"`{command} {verb.usage}` — {verb.summary}" for verb in VERBS]
    return "\n".join(lines)
