"""The ``slack:`` section of the service's config: parsed, checked, every problem reported at once. Pure.

Secrets by reference only (``*_env`` names an environment variable, ``*_file`` a mounted file), like the
repositories' secrets. Problems read ``slack.dotted.path -> message``; a misspelt key gets a
"did you mean".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from chatops.grammar import did_you_mean
from chatops.grants import CHANGING_VERBS, Grant
from chatops.slack_api import DEFAULT_API_BASE
from gitops.secret import Secret

SECTION = "slack"
_KEYS = (
    "bot_token_env", "bot_token_file", "signing_secret_env", "signing_secret_file", "app_token_env",
    "app_token_file", "api_base", "channel", "channels", "command", "grants",
)  # fmt: skip
_ROUTE_KEYS = ("repository", "environment", "channel")
_GRANT_KEYS = ("users", "channels", "repositories", "environments", "verbs")
_COMMAND = re.compile(r"^/[a-z0-9_-]{1,31}$")


@dataclass(frozen=True)
class ChannelRoute:
    repository: str
    """fnmatch pattern on ``owner/name``."""
    environment: str
    channel: str

    def matches(self, repository: str, environment: str) -> bool:
        return fnmatchcase(repository.lower(), self.repository.lower()) and fnmatchcase(
            environment, self.environment
        )


@dataclass(frozen=True)
class SlackSettings:
    bot_token: Secret
    channel: str
    signing_secret: Secret | None = None
    """Enables the HTTP request URLs (``/slack/commands``, ``/slack/interactions``)."""
    app_token: Secret | None = None
    """Enables Socket Mode."""
    api_base: str = DEFAULT_API_BASE
    routes: tuple[ChannelRoute, ...] = ()
    command: str = "/bodywork"
    grants: tuple[Grant, ...] = ()

    def channel_for(self, repository: str, environment: str) -> str:
        """The first matching route's channel, else the default channel."""
        return next((r.channel for r in self.routes if r.matches(repository, environment)), self.channel)

    @property
    def read_channels(self) -> tuple[str, ...]:
        return (self.channel, *(r.channel for r in self.routes))


class SlackSettingsError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Problems:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.list: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.list.append(f"{path} -> {message}")

    def unknown_keys(self, data: Mapping[str, Any], known: tuple[str, ...], path: str) -> None:
        for key in sorted(set(data) - set(known), key=str):
            hint = did_you_mean(str(key), known).replace("`", "'") or "; expected one of " + ", ".join(known)
            self.add(f"{path}.{key}", f"unknown setting{hint}")

    def string(self, data: Mapping[str, Any], key: str, path: str, default: str | None = None) -> str | None:
        value = data.get(key, default)
        if value is None or (isinstance(value, str) and value):
            return value
        self.add(f"{path}.{key}", f"must be a non-empty string, not {value!r}")
        return default

    def strings(
        self, data: Mapping[str, Any], key: str, path: str, default: tuple[str, ...]
    ) -> tuple[str, ...]:
        value = data.get(key, list(default))
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.add(f"{path}.{key}", f"must be a list of non-empty strings, not {value!r}")
            return default
        return tuple(value)

    def secret(self, data: Mapping[str, Any], key: str, path: str) -> Secret | None:
        if key in data:
            self.add(
                f"{path}.{key}", f"secrets are not read from the config file; set {key}_env or {key}_file"
            )
            return None
        env_name, file_name = self.string(data, f"{key}_env", path), self.string(data, f"{key}_file", path)
        if env_name and file_name:
            self.add(f"{path}.{key}_env", f"set {key}_env or {key}_file, not both")
        if env_name:
            value = self.environ.get(env_name, "")
            if not value:
                self.add(f"{path}.{key}_env", f"environment variable {env_name} is not set or empty")
            return Secret(value) if value else None
        if file_name:
            try:
                text = Path(file_name).read_text().strip()
            except OSError as error:
                self.add(f"{path}.{key}_file", f"cannot read {file_name}: {error.strerror}")
                return None
            if not text:
                self.add(f"{path}.{key}_file", f"{file_name} is empty")
            return Secret(text) if text else None
        return None


def _routes(problems: _Problems, raw: Any, path: str) -> tuple[ChannelRoute, ...]:
    if not isinstance(raw, list):
        problems.add(path, "must be a list of {repository, environment, channel}")
        return ()
    routes = []
    for index, item in enumerate(raw):
        where = f"{path}.{index}"
        if not isinstance(item, Mapping):
            problems.add(where, f"must be a mapping, not {item!r}")
            continue
        problems.unknown_keys(item, _ROUTE_KEYS, where)
        repository = problems.string(item, "repository", where, "*") or "*"
        environment = problems.string(item, "environment", where, "*") or "*"
        channel = problems.string(item, "channel", where)
        if channel is None:
            problems.add(f"{where}.channel", "required: the channel (id like C0123ABCD, or #name)")
            continue
        routes.append(ChannelRoute(repository, environment, channel))
    return tuple(routes)


def _grants(problems: _Problems, raw: Any, path: str) -> tuple[Grant, ...]:
    if not isinstance(raw, list):
        problems.add(path, "must be a list of grants")
        return ()
    grants = []
    for index, item in enumerate(raw):
        where = f"{path}.{index}"
        if not isinstance(item, Mapping):
            problems.add(where, f"must be a mapping, not {item!r}")
            continue
        problems.unknown_keys(item, _GRANT_KEYS, where)
        verbs = problems.strings(item, "verbs", where, CHANGING_VERBS)
        for verb in verbs:
            if verb not in CHANGING_VERBS:
                hint = did_you_mean(verb, CHANGING_VERBS).replace("`", "'")
                problems.add(f"{where}.verbs", f"{verb!r} is not a verb that needs a grant{hint}")
        grant = Grant(
            users=problems.strings(item, "users", where, ()),
            channels=problems.strings(item, "channels", where, ()),
            repositories=problems.strings(item, "repositories", where, ("*",)),
            environments=problems.strings(item, "environments", where, ("*",)),
            verbs=verbs,
        )
        if not grant.users and not grant.channels:
            problems.add(where, "a grant needs users or channels (or both)")
        grants.append(grant)
    return tuple(grants)


def parse_slack_settings(raw: Any, environ: Mapping[str, str]) -> SlackSettings:
    """The section's settings; raises :class:`SlackSettingsError` listing every problem."""
    problems = _Problems(environ)
    if not isinstance(raw, Mapping):
        raise SlackSettingsError([f"{SECTION} -> must be a mapping, not {raw!r}"])
    problems.unknown_keys(raw, (*_KEYS, "bot_token", "signing_secret", "app_token"), SECTION)
    bot_token = problems.secret(raw, "bot_token", SECTION)
    if bot_token is None and not any(f"bot_token{s}" in raw for s in ("", "_env", "_file")):
        problems.add(
            f"{SECTION}.bot_token_env", "required: name the environment variable holding the bot token"
        )
    api_base = problems.string(raw, "api_base", SECTION, DEFAULT_API_BASE) or DEFAULT_API_BASE
    if not api_base.startswith(("http://", "https://")):
        problems.add(f"{SECTION}.api_base", f"must be an http(s) URL, not {api_base!r}")
    channel = problems.string(raw, "channel", SECTION)
    if channel is None:
        problems.add(f"{SECTION}.channel", "required: the default channel (id like C0123ABCD, or #name)")
    command = problems.string(raw, "command", SECTION, "/bodywork") or "/bodywork"
    if not _COMMAND.match(command):
        problems.add(
            f"{SECTION}.command", f"must look like /bodywork (lower case, at most 32), not {command!r}"
        )
    settings = SlackSettings(
        bot_token=bot_token or Secret(""),
        channel=channel or "",
        signing_secret=problems.secret(raw, "signing_secret", SECTION),
        app_token=problems.secret(raw, "app_token", SECTION),
        api_base=api_base,
        routes=_routes(problems, raw.get("channels", []), f"{SECTION}.channels"),
        command=command,
        grants=_grants(problems, raw.get("grants", []), f"{SECTION}.grants"),
    )
    if settings.app_token is not None and not settings.app_token.reveal().startswith("xapp-"):
        problems.add(
            f"{SECTION}.app_token_env",
            "an app-level token starts with xapp- (Basic Information → App-Level Tokens)",
        )
    if problems.list:
        raise SlackSettingsError(problems.list)
    return settings
