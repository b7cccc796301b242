"""The extension point: how a package above ``gitops`` (ChatOps) plugs into the service.

``gitops`` never imports its extensions: they are found through the Python entry point group
``bodywork_gitops.extensions`` (``importlib.metadata``). An entry point names a factory, called with
no arguments, that returns an :class:`Extension`. In the extension's pyproject.toml::

    [project.entry-points."bodywork_gitops.extensions"]
    slack = "chatops.extension:SlackExtension"

An extension owns one top-level section of the service's YAML (``slack:``): :func:`load_settings`
hands the section to :meth:`Extension.parse_settings`, which reports problems through the same
reader (``slack.bot_token_env -> ...``) and returns its own settings object, kept in
``Settings.extensions[section]``. Only extensions whose section is present are active: they mount
their routes on the app, observe every run change and are started and stopped with the service.
``bodywork serve`` discovers once and hands the same instances to the settings and the service; an
extension still reads its settings from ``settings.extensions[section]``, not from its own state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from gitops.store import RunRecord
from runner.errors import FatalError

if TYPE_CHECKING:  # the service imports this module
    from gitops.config_reader import ConfigReader
    from gitops.service import Service
    from gitops.settings import Settings

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "bodywork_gitops.extensions"

RunObserver = Callable[[RunRecord], None]
"""Called with a run's record each time its status changes (queued, superseded, running, final)."""


@runtime_checkable
class Extension(Protocol):
    section: str
    """The top-level config section it owns, e.g. ``"slack"``; unique among extensions."""

    def parse_settings(self, raw: Any, reader: ConfigReader) -> object:
        """Its settings from the section's raw YAML value. Reports each problem with
        ``reader.problem(f"{section}.key", message)`` (and may use the reader's typed getters, which
        take ``section`` as the path) rather than raising."""
        ...

    def routes(self, settings: Settings) -> Sequence[object]:
        """Starlette routes to mount on the service's app (endpoints reach the service through
        ``gitops.web.service_of(request)``); empty for none."""
        ...

    def observe(self, run: RunRecord) -> None:
        """A run's status changed. Always called on the service's event loop: must not block (start a
        task or queue the work) and should not raise (an exception is logged and ignored)."""
        ...

    async def start(self, service: Service) -> None:
        """The service has started (store open, dispatcher running)."""
        ...

    async def stop(self) -> None:
        """The service is stopping; called before the store closes."""
        ...


def discover(group: str = ENTRY_POINT_GROUP) -> list[Extension]:
    """Every installed extension, one per entry point of `group`, in entry point name order.

    A factory that fails or returns something that is not an :class:`Extension` is an error that
    names the entry point: the service must not start without an extension it was installed with.
    """
    found: list[Extension] = []
    for point in sorted(entry_points(group=group), key=lambda p: p.name):
        try:
            extension = point.load()()
        except Exception as error:
            raise ExtensionError(f"extension {point.name} ({point.value}) failed to load: {error}") from error
        if not isinstance(extension, Extension):
            raise ExtensionError(
                f"extension {point.name} ({point.value}) is not a gitops.extensions.Extension: "
                f"it lacks {', '.join(_missing(extension))}"
            )
        found.append(extension)
    return check_sections(found)


class ExtensionError(FatalError):
    """An installed extension cannot be used."""


def check_sections(extensions: Iterable[Extension], reserved: Iterable[str] = ()) -> list[Extension]:
    """`extensions`, refused when two claim one section or one claims a section of the service's own."""
    taken = {name: "the service" for name in reserved}
    result = []
    for extension in extensions:
        if extension.section in taken:
            raise ExtensionError(
                f"extension {type(extension).__name__} claims the config section {extension.section!r}, "
                f"which {taken[extension.section]} already owns"
            )
        taken[extension.section] = type(extension).__name__
        result.append(extension)
    return result


def _missing(candidate: object) -> list[str]:
    members = ("section", "parse_settings", "routes", "observe", "start", "stop")
    return [name for name in members if not hasattr(candidate, name)]


def active(extensions: Iterable[Extension], configured: Mapping[str, object]) -> list[Extension]:
    """Those of `extensions` whose section is in the settings."""
    return [e for e in extensions if e.section in configured]


def notify(extensions: Sequence[Extension], run: RunRecord) -> None:
    for extension in extensions:
        try:
            extension.observe(run)
        except Exception:  # an extension never fails a run
            log.exception("extension %r failed to observe run %s", extension.section, run.id)
