"""pip's configuration files, read as pip reads them, for the installer that stands in for pip.

A machine set up for pip (a company index in ``/etc/pip.conf``, a user's mirror in
``~/.config/pip/pip.conf``) must build stage environments the same way with uv, which reads none of
pip's files. Each setting becomes the ``PIP_*`` variable pip itself would read it as (``index-url`` ->
``PIP_INDEX_URL``), so one translation to uv's variables serves both (:mod:`runner.backends.uv`).

pip's order, each overriding the one before (https://pip.pypa.io/en/stable/topics/configuration/):
the file named by ``PIP_CONFIG_FILE``; the global files; the user files (skipped when
``PIP_CONFIG_FILE`` names a file that exists); the site file; then ``PIP_*`` variables override every
file. ``PIP_CONFIG_FILE=os.devnull`` loads no file. In a file, ``[install]`` overrides ``[global]``.
"""

from __future__ import annotations

import configparser
import os
import sys
from collections.abc import Mapping
from pathlib import Path

_SECTIONS = ("global", "install")  # the `install` command's own section wins over `global`
_FILE = "pip.conf"


def pip_settings_from_files(environ: Mapping[str, str]) -> dict[str, str]:
    """The settings pip's configuration files give, as ``PIP_*`` names; a file that cannot be read or
    parsed is skipped, as pip would fail on it rather than guess."""
    settings: dict[str, str] = {}
    for path in config_files(environ):
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError):
            continue
        for section in _SECTIONS:
            if parser.has_section(section):
                for key, value in parser.items(section):
                    settings["PIP_" + key.upper().replace("-", "_")] = value.strip()
    return settings


def config_files(environ: Mapping[str, str]) -> list[Path]:
    """pip's configuration files on this machine that exist, in the order pip applies them."""
    named = environ.get("PIP_CONFIG_FILE")
    if named == os.devnull:
        return []
    home = Path(environ.get("HOME") or Path.home())
    ordered = [Path(named)] if named else []
    ordered += _global_files(environ)
    if not (named and Path(named).exists()):
        ordered += _user_files(environ, home)
    ordered.append(Path(sys.prefix) / _FILE)  # site: the environment the service runs in
    return [path for path in ordered if path.is_file()]


def _global_files(environ: Mapping[str, str]) -> list[Path]:
    if sys.platform == "darwin":
        return [Path("/Library/Application Support/pip") / _FILE]
    folders = [f for f in environ.get("XDG_CONFIG_DIRS", "/etc/xdg").split(os.pathsep) if f]
    return [*(Path(folder) / "pip" / _FILE for folder in folders), Path("/etc") / _FILE]


def _user_files(environ: Mapping[str, str], home: Path) -> list[Path]:
    legacy = home / ".pip" / _FILE  # loaded first: the current location overrides it
    mac = home / "Library" / "Application Support" / "pip"
    if sys.platform == "darwin" and mac.is_dir():
        return [legacy, mac / _FILE]
    config_home = Path(environ.get("XDG_CONFIG_HOME") or home / ".config")
    return [legacy, config_home / "pip" / _FILE]
