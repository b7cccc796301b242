"""Who may read the pages and the read API (they show logs): the ``pages`` section of the config.

    pages:
      access: token                        # open | token | proxy
      token_env: BODYWORK_PAGES_TOKEN      # token: a read token (the API token is accepted too)
      proxy_user_header: X-Forwarded-Email # proxy: the header the authenticating proxy sets
      trusted_proxies: [127.0.0.1/32]      # proxy: the addresses that header is believed from

``pages: open`` is short for ``pages: {access: open}``. Without the section the pages are open when
the service listens on a loopback address (a laptop) and need a token otherwise; with no token at all
they are then closed to everyone but say how to open them (``access: token`` written out without a
token is a configuration error instead). Pure: no HTTP here;
:mod:`gitops.web.access` enforces it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gitops.config_reader import ConfigReader
from gitops.secret import Secret

ACCESS_MODES = ("open", "token", "proxy")
_KEYS = ("access", "token_env", "token_file", "token", "proxy_user_header", "trusted_proxies")
_LOOPBACK_NAMES = ("localhost",)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class PagesSettings:
    access: str = "open"
    token: Secret | None = None
    """The read token of ``token`` access (the API token, which also allows re-run and cancel, works too)."""
    proxy_user_header: str = "X-Forwarded-Email"
    trusted_proxies: tuple[Network, ...] = (
        ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"),
    )
    """A request from elsewhere is refused in ``proxy`` access, whatever headers it carries."""

    def trusts(self, address: str | None) -> bool:
        if address is None:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted_proxies)


def is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_pages(reader: ConfigReader, raw: Any, host: str, api_token: Secret | None) -> PagesSettings:
    """The ``pages`` section; problems go to `reader` as ``pages.<key> -> ...``."""
    data: Mapping[str, Any] = {"access": raw} if isinstance(raw, str) else reader.mapping(raw, "pages")
    reader.unknown_keys(data, _KEYS, "pages")
    defaults = PagesSettings()
    written = reader.string(data, "access", "pages")
    access = written or ("open" if is_loopback(host) else "token")
    if access not in ACCESS_MODES:
        reader.problem("pages.access", f"must be one of {', '.join(ACCESS_MODES)}, not {access!r}")
        access = "token"
    token = reader.secret(data, "token", "pages", required=False)
    if written == "token" and token is None and api_token is None:
        reader.problem(
            "pages.access",
            "the pages and the read API show logs, so off a loopback address they need a token: set "
            "pages.token_env (or service.api_token_env), or put an authenticating proxy in front "
            "(pages.access: proxy), or allow everyone with pages.access: open",
        )
    header = reader.string(data, "proxy_user_header", "pages", defaults.proxy_user_header)
    return PagesSettings(
        access=access,
        token=token,
        proxy_user_header=header or defaults.proxy_user_header,
        trusted_proxies=_networks(reader, data.get("trusted_proxies"), defaults.trusted_proxies),
    )


def _networks(reader: ConfigReader, raw: Any, default: tuple[Network, ...]) -> tuple[Network, ...]:
    if raw is None:
        return default
    if not isinstance(raw, list):
        reader.problem("pages.trusted_proxies", f"must be a list of addresses or networks, not {raw!r}")
        return default
    networks: list[Network] = []
    for index, item in enumerate(raw):
        try:
            networks.append(ipaddress.ip_network(str(item), strict=False))
        except ValueError:
            reader.problem(
                f"pages.trusted_proxies.{index}",
                f"must be an address or a network (10.0.0.0/8), not {item!r}",
            )
    return tuple(networks)
