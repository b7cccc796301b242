"""Stage environments are built once per set of requirements and then reused."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from runner.backends.base import StageError
from runner.backends.venvs import VenvCache, requirements_key


def test_the_key_ignores_order_case_and_blank_entries() -> None:
    assert requirements_key(["six==1.16.0", "Flask", " "], "3.11") == requirements_key(
        ["Flask", "six==1.16.0"], "3.11"
    )
    assert requirements_key(["six"], "3.11") != requirements_key(["six"], "3.12")


def test_second_use_installs_nothing(tmp_path: Path) -> None:
    cache = VenvCache(tmp_path / "venvs")
    wheel = _tiny_wheel(tmp_path)
    logs: list[str] = []

    first = asyncio.run(cache.ensure([str(wheel)], logs.append))
    assert any("Successfully installed tinypkg-1.0" in line for line in logs)
    logs.clear()
    second = asyncio.run(cache.ensure([str(wheel)], logs.append))

    assert second == first
    assert logs == []
    assert subprocess.run([str(second), "-c", "import tinypkg"], check=False).returncode == 0


def test_a_failed_install_names_the_fix_and_leaves_no_half_built_venv(tmp_path: Path) -> None:
    cache = VenvCache(tmp_path / "venvs")
    missing = tmp_path / "no-such-package-1.0-py3-none-any.whl"
    try:
        asyncio.run(cache.ensure([str(missing)], lambda line: None))
        raise AssertionError("expected a StageError")
    except StageError as error:
        assert "installing the requirements failed" in str(error)
        assert "check the names and versions in the stage's requirements" in str(error)
    assert not (cache.python_for([str(missing)]).parent.parent / "bodywork-complete.json").exists()


def _tiny_wheel(folder: Path) -> Path:
    """A real, installable wheel built by hand, so the test needs no network."""
    import base64
    import hashlib
    import zipfile

    path = folder / "tinypkg-1.0-py3-none-any.whl"
    files = {
        "tinypkg/__init__.py": "VALUE = 1\n",
        "tinypkg-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n",
        "tinypkg-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
            digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
            record.append(f"{name},sha256={digest.decode()},{len(text)}")
        record.append("tinypkg-1.0.dist-info/RECORD,,")
        archive.writestr("tinypkg-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return path
