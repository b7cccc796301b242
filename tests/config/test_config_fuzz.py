"""No input, however malformed, produces a traceback: random bytes, mangled YAML, random documents."""

from __future__ import annotations

import json
import random
import string
from pathlib import Path

import pytest

from runner.config import ConfigError, load_pipeline, parse_pipeline_yaml
from runner.ini_layout import load_ini_layout

from .helpers import VALID


def _loads_or_reports(text: str) -> None:
    try:
        parse_pipeline_yaml(text)
    except ConfigError as error:
        assert error.problems, text
        for problem in error.problems:
            assert " -> " in problem, problem


@pytest.mark.parametrize("seed", range(0, 300, 30))
def test_random_bytes(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    for _ in range(30):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
        (tmp_path / "bodywork.yaml").write_bytes(data)
        try:
            load_pipeline(tmp_path)
        except ConfigError as error:
            assert error.problems


@pytest.mark.parametrize("seed", range(0, 300, 30))
def test_mangled_valid_file(seed: int) -> None:
    rng = random.Random(seed)
    alphabet = string.printable + "&*!|>%@`{}[]-:#'\"\u00e9\u2028"
    for _ in range(30):
        chars = list(VALID)
        for _ in range(rng.randrange(1, 8)):
            position = rng.randrange(len(chars))
            action = rng.randrange(3)
            if action == 0:
                del chars[position]
            elif action == 1:
                chars.insert(position, rng.choice(alphabet))
            else:
                chars[position] = rng.choice(alphabet)
        _loads_or_reports("".join(chars))


def _random_value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(8 if depth < 4 else 5)
    if kind == 0:
        return rng.randrange(-5, 70000)
    if kind == 1:
        return rng.choice([True, False, None, 1.5, -0.0, "1.1", "", "a >> b", "x" * 300])
    if kind == 2:
        return rng.choice(["version", "pipeline", "stages", "DAG", "batch", "service", "a, b"])
    if kind == 3:
        return float(rng.random())
    if kind == 4:
        return "".join(rng.choice(string.printable) for _ in range(rng.randrange(10)))
    if kind == 5:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = [
        "version",
        "pipeline",
        "project",
        "stages",
        "logging",
        "name",
        "DAG",
        "batch",
        "service",
        "retries",
        "port",
        "secrets",
        "args",
        "cpu_request",
        "x",
    ]
    return {rng.choice(keys): _random_value(rng, depth + 1) for _ in range(rng.randrange(5))}


@pytest.mark.parametrize("seed", range(0, 300, 30))
def test_random_documents(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(30):
        # JSON is YAML: random structures with every section name and value type in play
        _loads_or_reports(json.dumps(_random_value(rng)))


@pytest.mark.parametrize("seed", range(0, 300, 60))
def test_random_ini_layouts(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    pieces = [
        "[default]",
        "[workflow]",
        "[batch]",
        "[service]",
        "[secrets]",
        "DAG=a >> b",
        "PROJECT_NAME=p",
        "DOCKER_IMAGE=i",
        "STAGE_TYPE=batch",
        "EXECUTABLE_SCRIPT=m.py",
        "CPU_REQUEST=x",
        "PORT=80",
        "INGRESS=maybe",
        "=",
        "[",
        "% interpolation %(x)s",
        "LOG_LEVEL=INFO",
        "a" * 50,
        "RETRIES=-1",
        "\x00",
        'DAG="a"',
    ]
    for attempt in range(20):
        root = tmp_path / str(attempt)
        (root / "a").mkdir(parents=True)
        lines = [rng.choice(pieces) for _ in range(rng.randrange(12))]
        (root / "bodywork.ini").write_text("\n".join(lines))
        (root / "a" / "config.ini").write_text("\n".join(rng.choice(pieces) for _ in range(8)))
        pipeline, problems, _notices = load_ini_layout(root)
        assert (pipeline is None) == bool(problems)
