"""Who may change what from Slack. Pure.

``rerun``, ``cancel`` and ``delete`` (and their buttons) are denied unless a grant allows them: a grant
names repositories and environments (fnmatch patterns, default all), the verbs (default all three), and
users and/or channels. With both users and channels, the user must act from one of those channels.
``schedules run`` needs the ``rerun`` grant (see docs/decisions.md).
Read-only verbs are open to the configured channels.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

CHANGING_VERBS = ("rerun", "cancel", "delete")


@dataclass(frozen=True)
class Actor:
    user_id: str
    channel_id: str
    channel_name: str = ""
    user_name: str = ""
    team_id: str = ""

    def in_channel(self, channels: Iterable[str]) -> bool:
        names = {self.channel_id, self.channel_name, f"#{self.channel_name}"} - {"", "#"}
        return any(channel in names for channel in channels)


@dataclass(frozen=True)
class Grant:
    users: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    repositories: tuple[str, ...] = ("*",)
    environments: tuple[str, ...] = ("*",)
    verbs: tuple[str, ...] = CHANGING_VERBS

    def allows(self, actor: Actor, verb: str, repository: str, environment: str) -> bool:
        if verb not in self.verbs:
            return False
        if not any(fnmatchcase(repository.lower(), p.lower()) for p in self.repositories):
            return False
        if not any(fnmatchcase(environment, p) for p in self.environments):
            return False
        user_ok = actor.user_id in self.users if self.users else True
        channel_ok = actor.in_channel(self.channels) if self.channels else True
        return bool(self.users or self.channels) and user_ok and channel_ok


def allowed(grants: Iterable[Grant], actor: Actor, verb: str, repository: str, environment: str) -> bool:
    return any(grant.allows(actor, verb, repository, environment) for grant in grants)
