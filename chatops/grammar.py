"""The slash command's grammar: ``/bodywork VERB [ARG ...]`` into a :class:`Command`. Pure.

A verb is one row of :data:`VERBS`: adding a verb (``schedules`` when schedules exist) is adding a row
and a handler. Bad input raises :class:`UsageError` with the usage line and a "did you mean".
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
    """Changes something (rerun, cancel, delete): denied unless a grant allows it."""

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
)
VERBS_BY_NAME = {verb.name: verb for verb in VERBS}


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
    verb = VERBS_BY_NAME.get(name)
    if verb is None:
        names = [v.name for v in VERBS]
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
