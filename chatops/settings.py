"""The ``slack:`` section of the service's config: parsed, checked, every problem reported at once. Pure.

Secrets by reference only (``*_env`` names an environment variable, ``*_file`` a mounted file), like the
repositories' secrets. Problems read ``slack.dotted.path -> message``; a misspelt key gets a
"did you mean". The service's :class:`~gitops.config_reader.ConfigReader` collects them with the
rest of the file's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from chatops.grants import CHANGING_VERBS, Grant
from chatops.slack_api import DEFAULT_API_BASE
from gitops.config_reader import ConfigReader, did_you_mean
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


def _routes(reader: ConfigReader, raw: Any, path: str) -> tuple[ChannelRoute, ...]:
    routes = []
    for where, item in reader.mappings(raw, path, "{repository, environment, channel}", _ROUTE_KEYS):
        repository = reader.string(item, "repository", where, "*") or "*"
        environment = reader.string(item, "environment", where, "*") or "*"
        channel = reader.string(item, "channel", where)
        if channel is None:
            reader.problem(f"{where}.channel", "required: the channel (id like C0123ABCD, or #name)")
            continue
        routes.append(ChannelRoute(repository, environment, channel))
    return tuple(routes)


def _grants(reader: ConfigReader, raw: Any, path: str) -> tuple[Grant, ...]:
    grants = []
    for where, item in reader.mappings(raw, path, "grants", _GRANT_KEYS):
        verbs = reader.patterns(item, "verbs", where, CHANGING_VERBS)
        for verb in verbs:
            if verb not in CHANGING_VERBS:
                hint = did_you_mean(verb, CHANGING_VERBS)
                if verb.startswith("schedule"):
                    hint = "; `schedules run` is allowed by the `rerun` verb"
                reader.problem(f"{where}.verbs", f"{verb!r} is not a verb that needs a grant{hint}")
        grant = Grant(
            users=reader.patterns(item, "users", where, ()),
            channels=reader.patterns(item, "channels", where, ()),
            repositories=reader.patterns(item, "repositories", where, ("*",)),
            environments=reader.patterns(item, "environments", where, ("*",)),
            verbs=verbs,
        )
        if not grant.users and not grant.channels:
            reader.problem(where, "a grant needs users or channels (or both)")
        grants.append(grant)
    return tuple(grants)


def parse_slack_settings(raw: Any, reader: ConfigReader) -> SlackSettings | None:
    """The section's settings; each problem goes to `reader` (None when there were any)."""
    before = len(reader.problems)
    section = reader.mapping(raw, SECTION)
    reader.unknown_keys(section, (*_KEYS, "bot_token", "signing_secret", "app_token"), SECTION)
    bot_token = reader.secret(section, "bot_token", SECTION, required="bot_token" not in section)
    api_base = reader.string(section, "api_base", SECTION, DEFAULT_API_BASE) or DEFAULT_API_BASE
    if not api_base.startswith(("http://", "https://")):
        reader.problem(f"{SECTION}.api_base", f"must be an http(s) URL, not {api_base!r}")
    channel = reader.string(section, "channel", SECTION)
    if not channel:
        reader.problem(f"{SECTION}.channel", "required: the default channel (id like C0123ABCD, or #name)")
    command = reader.string(section, "command", SECTION, "/bodywork") or "/bodywork"
    if not _COMMAND.match(command):
        reader.problem(
            f"{SECTION}.command", f"must look like /bodywork (lower case, at most 32), not {command!r}"
        )
    app_token = reader.secret(section, "app_token", SECTION, required=False)
    if app_token is not None and not app_token.reveal().startswith("xapp-"):
        reader.problem(
            f"{SECTION}.app_token_env" if "app_token_env" in section else f"{SECTION}.app_token_file",
            "an app-level token starts with xapp- (Basic Information → App-Level Tokens)",
        )
    settings = SlackSettings(
        bot_token=bot_token or Secret(""),
        channel=channel or "",
        signing_secret=reader.secret(section, "signing_secret", SECTION, required=False),
        app_token=app_token,
        api_base=api_base,
        routes=_routes(reader, section.get("channels", []), f"{SECTION}.channels"),
        command=command,
        grants=_grants(reader, section.get("grants", []), f"{SECTION}.grants"),
    )
    return settings if len(reader.problems) == before else None
