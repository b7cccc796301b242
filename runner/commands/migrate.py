"""``bodywork migrate [PATH] [--stdout] [--force]``: rewrite an older config as a schema "1.1"
bodywork.yaml that loads into the same pipeline.

- A schema "1.0" bodywork.yaml is rewritten in place (two lines change, comments are kept); the
  original is kept next to it as ``bodywork.yaml.1.0.bak``.
- A bodywork.ini layout gets a new bodywork.yaml next to bodywork.ini; the ini files are left for
  the user to delete. An existing schema "1.1" bodywork.yaml is never overwritten without --force.
- With --stdout the new text is printed and nothing is written.
Before anything is written, the new text is loaded back and compared with the original pipeline.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from runner.config import (
    YAML_NAMES,
    ConfigError,
    find_config,
    load_pipeline,
    parse_pipeline_yaml,
    read_config_text,
)
from runner.errors import FatalError
from runner.migration import to_yaml, upgrade_1_0_text
from runner.model import Pipeline
from runner.yaml_schema import describe

BACKUP_SUFFIX = ".1.0.bak"
INI_HEADER = (
    "# Written by `bodywork migrate` from bodywork.ini and the stages' config.ini and\n"
    "# requirements.txt files, which are no longer read: delete them when you are ready.\n"
)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "migrate",
        help='rewrite a schema "1.0" bodywork.yaml or a bodywork.ini layout as schema "1.1"',
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "path", nargs="?", default=".", type=Path, help="folder or config file (default: .)"
    )
    parser.add_argument("--stdout", action="store_true", help="print the new file, write nothing")
    parser.add_argument(
        "--force", action="store_true", help="overwrite an existing bodywork.yaml or backup"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    config = find_config(args.path)
    pipeline = load_pipeline(config)
    if pipeline.source_schema == "1.1":
        print(f'{config.name} is already schema "1.1"; nothing to migrate')
        return 0
    if pipeline.source_schema == "1.0":
        text = _from_1_0(read_config_text(config), pipeline)
        target = config
    else:
        text = INI_HEADER + to_yaml(pipeline)
        target = config.parent / YAML_NAMES[0]
    _check_round_trip(text, pipeline)
    if args.stdout:
        sys.stdout.write(text)
        return 0
    if pipeline.source_schema == "1.0":
        backup = config.with_name(config.name + BACKUP_SUFFIX)
        if backup.exists() and not args.force:
            raise FatalError(f"{backup} already exists; remove it or pass --force to replace it")
        backup.write_bytes(config.read_bytes())
        target.write_text(text, encoding="utf-8")
        print(
            f'rewrote {target} as schema "1.1" ({describe(pipeline)}); the original is in {backup.name}'
        )
    else:
        if target.exists() and not args.force:
            raise FatalError(
                f"{target} already exists; pass --force to overwrite it with the pipeline of {config.name}"
            )
        target.write_text(text, encoding="utf-8")
        print(f'wrote {target} (schema "1.1") from {config.name}: {describe(pipeline)}')
        print("the bodywork.ini and config.ini files are no longer read: delete them when ready")
    for notice in pipeline.notices:
        if "bodywork migrate" not in notice:
            print(f"notice: {notice}")
    return 0


def _from_1_0(original: str, pipeline: Pipeline) -> str:
    text = upgrade_1_0_text(original)
    if text is not None:
        try:
            if parse_pipeline_yaml(text) == pipeline:
                return text
        except ConfigError:
            pass
    return to_yaml(pipeline)


def _check_round_trip(text: str, pipeline: Pipeline) -> None:
    try:
        migrated = parse_pipeline_yaml(text)
    except ConfigError as error:
        raise FatalError(
            f"the migrated file does not load; please report this bug:\n{error}"
        ) from None
    if migrated != pipeline:
        raise FatalError(
            "the migrated file loads into a different pipeline; please report this bug"
        )
