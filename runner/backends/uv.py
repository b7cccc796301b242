"""uv, the installer that builds stage environments: where its binary is, and the environment it runs in.

uv ships as a binary inside its PyPI wheel, installed beside this project's interpreter; nothing imports
it. pip's settings keep working, from the environment and from pip's configuration files
(:mod:`runner.backends.pip_config`): each is translated to uv's own variable unless that is set
already. uv trusts the system's certificate store (UV_SYSTEM_CERTS), as pip does through the system's
CA bundle, so a TLS-inspecting proxy whose CA the machine trusts keeps working.
"""

from __future__ import annotations

import os
import shutil
import sysconfig
from pathlib import Path

from runner.backends.base import StageError
from runner.backends.pip_config import pip_settings_from_files

# What uv inherits from the runner's environment as it is (besides every UV_* variable).
_INHERITED = (
    "PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "XDG_CONFIG_HOME",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
    "http_proxy", "https_proxy", "all_proxy", "no_proxy", "PYENV_ROOT",
)
# pip's variable -> uv's, with how a list is joined (both split on whitespace unless said otherwise).
_PIP_TO_UV = {
    "PIP_INDEX_URL": "UV_INDEX_URL",
    "PIP_EXTRA_INDEX_URL": "UV_EXTRA_INDEX_URL",
    "PIP_TRUSTED_HOST": "UV_INSECURE_HOST",
    "PIP_NO_INDEX": "UV_NO_INDEX",
    "PIP_DEFAULT_TIMEOUT": "UV_HTTP_TIMEOUT",
    "PIP_TIMEOUT": "UV_HTTP_TIMEOUT",
}
# pip's CA bundle settings, in pip's order of precedence; uv reads SSL_CERT_FILE.
_CA_BUNDLES = ("PIP_CERT", "REQUESTS_CA_BUNDLE")


def uv_command() -> list[str]:
    """The argv prefix that runs uv."""
    beside_us = Path(sysconfig.get_path("scripts")) / "uv"
    if beside_us.is_file():
        return [str(beside_us)]
    on_path = shutil.which("uv")
    if on_path:
        return [on_path]
    raise StageError("uv, which builds stage environments, is not installed; run `pip install uv`")


def uv_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment uv runs in: pip's index, link and CA settings translated (a ``PIP_*`` variable
    over pip's files, as for pip), system certificates on."""
    source = dict(os.environ if environ is None else environ)
    settings = {**pip_settings_from_files(source), **source}  # a variable wins over pip's files
    env = {name: source[name] for name in _INHERITED if name in source}
    for pip_name, uv_name in _PIP_TO_UV.items():
        if pip_name in settings:
            env[uv_name] = settings[pip_name]
    if "PIP_FIND_LINKS" in settings:
        env["UV_FIND_LINKS"] = ",".join(settings["PIP_FIND_LINKS"].split())
    if "SSL_CERT_FILE" not in env:
        bundle = next((settings[n] for n in _CA_BUNDLES if settings.get(n)), None)
        if bundle is not None:
            env["SSL_CERT_FILE"] = bundle
    env["UV_SYSTEM_CERTS"] = "1"
    env["UV_NO_PROGRESS"] = "1"
    env.update({k: v for k, v in source.items() if k.startswith("UV_")})  # the user's own settings win
    return env
