"""Reading ini files as the old layout needs them: every problem collected, keys upper-cased as
Bodywork read them, each problem as ``<file> [<section>] <KEY> -> <message>``.

The only module that imports ``configparser`` (a contract in pyproject.toml).
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass, field
from pathlib import Path

from runner.hints import integer_rule, quoted, unknown_key_message

MAX_INI_BYTES = 1_000_000
INI_FILE = "bodywork.ini"

# What the "missing" problems suggest writing.
EXAMPLES = {
    "PROJECT_NAME": "my-project",
    "DOCKER_IMAGE": "bodyworkml/bodywork-core:latest",
    "DAG": "stage-1 >> stage-2",
    "LOG_LEVEL": "INFO",
    "STAGE_TYPE": "batch",
    "EXECUTABLE_SCRIPT": "main.py",
    "CPU_REQUEST": "0.5",
    "MEMORY_REQUEST_MB": "100",
    "MAX_COMPLETION_TIME_SECONDS": "60",
    "RETRIES": "2",
    "MAX_STARTUP_TIME_SECONDS": "60",
    "REPLICAS": "2",
    "PORT": "5000",
    "INGRESS": "True",
}


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    missing_sections: set[str] = field(default_factory=set)


@dataclass
class Ini:
    """One parsed ini file: upper-cased keys per section, as configparser's case-insensitive keys."""

    label: str
    sections: dict[str, dict[str, str]]
    known: dict[str, tuple[str, ...]]

    def where(self, section: str, key: str = "") -> str:
        return f"{self.label} [{section}]" + (f" {key}" if key else "")


def read_ini(
    path: Path, label: str, report: Report, known: dict[str, tuple[str, ...]]
) -> Ini | None:
    if not path.is_file():
        report.problems.append(
            f"{label} -> missing; "
            + (
                "create it (see docs/bodywork-yaml.md)"
                if label.endswith(INI_FILE)
                else "every stage folder needs a config.ini"
            )
        )
        return None
    try:
        if path.stat().st_size > MAX_INI_BYTES:
            report.problems.append(f"{label} -> larger than 1 MB; is this the right file?")
            return None
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        report.problems.append(
            f"{label} -> not UTF-8 text (byte {error.start}); is this the right file?"
        )
        return None
    except OSError as error:
        report.problems.append(f"{label} -> cannot be read: {error.strerror}")
        return None
    parser = configparser.ConfigParser(interpolation=None, default_section="\0none")
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(text, source=label)
    except configparser.Error as error:
        message = str(error).replace("\n", " ")
        report.problems.append(f"{label} -> cannot be read as an ini file: {message}")
        return None
    sections: dict[str, dict[str, str]] = {}
    for name in parser.sections():
        values: dict[str, str] = {}
        for key, value in parser.items(name):
            upper = key.upper()
            if upper in values:
                report.problems.append(f"{label} [{name}] {upper} -> set twice; remove one")
            values[upper] = value.strip()
        sections[name] = values
    return Ini(label, sections, known)


def check_keys(
    ini: Ini,
    known: dict[str, tuple[str, ...]],
    report: Report,
    free_sections: tuple[str, ...] = (),
) -> None:
    for section, values in ini.sections.items():
        if section in free_sections:
            continue
        if section not in known:
            report.problems.append(
                f"{ini.where(section)} -> unknown section; "
                + unknown_key_message(section, [*known, *free_sections]).replace("key", "section")
            )
            continue
        for key in values:
            if key not in known[section]:
                report.problems.append(
                    f"{ini.where(section, key)} -> " + unknown_key_message(key, known[section])
                )


def value(ini: Ini, section: str, key: str, report: Report) -> str | None:
    values = ini.sections.get(section)
    if values is None:
        if section not in report.missing_sections:
            report.missing_sections.add(section)
            keys = ini.known.get(section, (key,))
            settings = ", ".join(f"{k}={EXAMPLES.get(k, '...')}" for k in keys)
            report.problems.append(
                f"{ini.where(section)} -> missing section; add [{section}] with {settings}"
            )
        return None
    if key not in values or values[key] == "":
        report.problems.append(
            f"{ini.where(section, key)} -> missing; add {key}={EXAMPLES.get(key, '...')}"
        )
        return None
    return values[key]


def integer(
    ini: Ini, section: str, key: str, report: Report, low: int = 0, high: int | None = None
) -> int | None:
    text = value(ini, section, key, report)
    if text is None:
        return None
    try:
        number = int(text)
    except ValueError:
        number = None
    if number is None or number < low or (high is not None and number > high):
        rule = integer_rule(low, high)
        report.problems.append(f"{ini.where(section, key)} -> must be {rule}, got {quoted(text)}")
        return None
    return number
