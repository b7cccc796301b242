"""Checks on a run's source folder: module paths must exist and stay inside the repository."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from runner.model import Stage


def module_problem(source_dir: Path, stage: Stage) -> str | None:
    """Why `stage`'s module cannot run from `source_dir`, or None when it can."""
    relative = PurePosixPath(stage.executable_module_path)
    if relative.is_absolute() or ".." in relative.parts:
        return (
            f"stage {stage.name}: executable_module_path {str(relative)!r} leaves the repository; "
            "give a path relative to the folder holding bodywork.yaml, without '..'"
        )
    root = source_dir.resolve()
    module = (root / relative).resolve()
    if not module.is_relative_to(root):
        return (
            f"stage {stage.name}: executable_module_path {str(relative)!r} resolves outside the "
            "repository (through a symbolic link); point it at a file inside the repository"
        )
    if not module.is_file():
        return (
            f"stage {stage.name}: executable_module_path {str(relative)!r} does not exist at this "
            "commit; add the file or correct the path in bodywork.yaml"
        )
    return None
