"""Loading a pipeline's config from a folder: bodywork.yaml (schema "1.1" or "1.0"), or the older
bodywork.ini layout. Every problem is collected and raised at once as a :class:`ConfigError`.

- :func:`parse_pipeline_yaml`: text to :class:`~runner.model.Pipeline`, pure.
- :func:`load_pipeline`: finds the config in a folder (or takes a file), reads it, and with
  ``check_files=True`` also checks that every stage's module exists inside the folder.
"""

from __future__ import annotations

from pathlib import Path

from runner.errors import FatalError
from runner.ini_files import INI_FILE
from runner.ini_layout import load_ini_layout
from runner.model import Pipeline
from runner.sources import module_problem
from runner.yaml_io import MAX_YAML_CHARS, YamlError, parse_yaml
from runner.yaml_schema import validate_document

YAML_NAMES = ("bodywork.yaml", "bodywork.yml")


class ConfigError(FatalError):
    """A pipeline config with problems; `problems` holds each as ``<dotted.path> -> <message>``."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__(self._text())

    def _text(self) -> str:
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        return "\n".join([f"{self.source} has {count} {noun}:", *(f"  {p}" for p in self.problems)])

    def __str__(self) -> str:
        return self._text()


def parse_pipeline_yaml(text: str, source: str = "bodywork.yaml") -> Pipeline:
    """The pipeline in `text`, the content of a bodywork.yaml; ConfigError lists every problem."""
    try:
        document = parse_yaml(text)
    except YamlError as error:
        raise ConfigError(source, [f"{source} -> {error}"]) from None
    pipeline, problems, _notices = validate_document(document, source)
    if pipeline is None:
        raise ConfigError(source, problems or [f"{source} -> is not a valid pipeline"])
    return pipeline


def find_config(folder_or_file: Path) -> Path:
    """The config file for `folder_or_file`: itself if a file, else bodywork.yaml/.yml/.ini in it."""
    if folder_or_file.is_file():
        return folder_or_file
    if not folder_or_file.is_dir():
        raise ConfigError(
            str(folder_or_file),
            [f"{folder_or_file} -> does not exist; pass the folder holding bodywork.yaml"],
        )
    for name in (*YAML_NAMES, INI_FILE):
        candidate = folder_or_file / name
        if candidate.is_file():
            return candidate
    raise ConfigError(
        str(folder_or_file),
        [
            f"{folder_or_file} -> holds no bodywork.yaml (nor the older bodywork.ini); create one "
            "(see docs/bodywork-yaml.md) or pass the folder that holds it"
        ],
    )


def read_config_text(path: Path) -> str:
    """The text of a config file, refusing huge and non-UTF-8 files with a clear message."""
    name = path.name
    try:
        size = path.stat().st_size
        if size > MAX_YAML_CHARS:
            raise ConfigError(
                name,
                [
                    f"{name} -> is {size / 1e6:.1f} MB, a bodywork.yaml is at "
                    "most 1 MB; is this the right file?"
                ],
            )
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError(name, [f"{name} -> cannot be read: {error.strerror}"]) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ConfigError(
            name,
            [
                f"{name} -> is not UTF-8 text (byte 0x{data[error.start]:02x} at offset "
                f"{error.start}); a bodywork.yaml is plain text, is this the right file?"
            ],
        ) from None


def load_pipeline(folder_or_file: Path, *, check_files: bool = False) -> Pipeline:
    """The pipeline configured in `folder_or_file` (a folder, a bodywork.yaml or a bodywork.ini).

    Raises ConfigError listing every problem. With `check_files`, every stage's module must exist
    inside the folder holding the config (and not escape it through a symbolic link)."""
    path = find_config(Path(folder_or_file))
    root = path.parent
    if path.suffix == ".ini":
        pipeline, problems, _notices = load_ini_layout(root, path.name)
        if pipeline is None:
            raise ConfigError(path.name, problems)
    else:
        pipeline = parse_pipeline_yaml(read_config_text(path), path.name)
    if check_files:
        problems = []
        for stage in pipeline.stages.values():
            problem = module_problem(root, stage)
            if problem is not None:
                problem = problem.removeprefix(f"stage {stage.name}: ")
                problems.append(f"stages.{stage.name}.executable_module_path -> {problem}")
        if problems:
            raise ConfigError(path.name, problems)
    return pipeline
