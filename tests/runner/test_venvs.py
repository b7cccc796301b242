"""Stage environments: built by uv once per Python and requirements, like Bodywork's image, then reused."""

from __future__ import annotations

import asyncio
import functools
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.backends.base import StageError
from runner.backends.uv import uv_environment
from runner.backends.venvs import VenvCache, requirements_key, with_seeds
from tests.runner.builders import failing_sdist, wheel


def test_the_key_ignores_order_case_and_blank_entries() -> None:
    assert requirements_key(["six==1.16.0", "Flask", " "], "3.11") == requirements_key(
        ["Flask", "six==1.16.0"], "3.11"
    )
    assert requirements_key(["six"], "3.11") != requirements_key(["six"], "3.12")


def test_pip_and_setuptools_are_added_unless_the_requirements_name_them() -> None:
    assert with_seeds(["numpy==1.26.4"]) == ["numpy==1.26.4", "pip", "setuptools<81"]
    assert with_seeds(["setuptools==59.8.0", "PIP>=23"]) == ["setuptools==59.8.0", "PIP>=23"]


def test_pip_settings_from_the_environment_become_uv_settings() -> None:
    env = uv_environment({
        "PATH": "/bin",
        "PIP_INDEX_URL": "https://mirror.example/simple",
        "PIP_EXTRA_INDEX_URL": "https://a.example/simple https://b.example/simple",
        "PIP_FIND_LINKS": "/opt/wheels /srv/wheels",
        "PIP_TRUSTED_HOST": "mirror.example",
        "PIP_CERT": "/etc/corp-ca.pem",
        "UV_EXTRA_INDEX_URL": "https://mine.example/simple",
        "GITHUB_TOKEN": "never passed on",
    })

    assert env["UV_INDEX_URL"] == "https://mirror.example/simple"
    assert env["UV_EXTRA_INDEX_URL"] == "https://mine.example/simple"  # uv's own setting wins
    assert env["UV_FIND_LINKS"] == "/opt/wheels,/srv/wheels"
    assert env["UV_INSECURE_HOST"] == "mirror.example"
    assert env["SSL_CERT_FILE"] == "/etc/corp-ca.pem"
    assert env["UV_SYSTEM_CERTS"] == "1"
    assert "GITHUB_TOKEN" not in env
    both = uv_environment({"SSL_CERT_FILE": "/a.pem", "REQUESTS_CA_BUNDLE": "/b.pem"})
    assert both["SSL_CERT_FILE"] == "/a.pem"


def _pip_conf(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_pip_s_configuration_files_become_uv_settings_in_pip_s_order(tmp_path: Path) -> None:
    home = tmp_path / "home"
    legacy = "[global]\nindex-url = https://legacy.example/simple\ntimeout = 7\n"
    _pip_conf(home / ".pip" / "pip.conf", legacy)
    _pip_conf(home / ".config" / "pip" / "pip.conf", (
        "[global]\nindex-url = https://user.example/simple\ntrusted-host = user.example\n"
        "extra-index-url =\n    https://a.example/simple\n    https://b.example/simple\n"
        "[install]\nfind-links = /opt/one /opt/two\n[download]\nindex-url = https://not-install.example\n"
    ))
    machine = {"HOME": str(home), "XDG_CONFIG_DIRS": str(tmp_path / "no-global")}

    env = uv_environment({**machine, "PIP_TRUSTED_HOST": "env.example"})

    assert env["UV_INDEX_URL"] == "https://user.example/simple"  # the current file over the legacy one
    assert env["UV_HTTP_TIMEOUT"] == "7"
    assert env["UV_EXTRA_INDEX_URL"].split() == ["https://a.example/simple", "https://b.example/simple"]
    assert env["UV_FIND_LINKS"] == "/opt/one,/opt/two"  # [install] counts, other commands' do not
    assert env["UV_INSECURE_HOST"] == "env.example"  # a PIP_* variable over every file, as for pip
    assert uv_environment({**machine, "UV_INDEX_URL": "https://uv.example"})["UV_INDEX_URL"] == (
        "https://uv.example"
    )

    named = _pip_conf(tmp_path / "named.conf", "[global]\nno-index = true\n")
    with_named = uv_environment({**machine, "PIP_CONFIG_FILE": str(named)})
    assert with_named["UV_NO_INDEX"] == "true"
    assert "UV_INDEX_URL" not in with_named  # a named file that exists: the user's files are not read
    assert "UV_INDEX_URL" not in uv_environment({**machine, "PIP_CONFIG_FILE": os.devnull})


def test_an_index_set_in_pip_conf_is_used(
    tmp_path: Path, local_index: str, seed_wheels: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A machine set up for pip (its index in pip.conf, no variable) builds stage environments."""
    for name in ("PIP_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX", "PIP_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    _pip_conf(home / ".config" / "pip" / "pip.conf",
              f"[global]\nindex-url = {local_index}\nfind-links = {seed_wheels}\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    cache = VenvCache(tmp_path / "cache" / "venvs")

    python = asyncio.run(cache.ensure(["bodywork-test-only-package==2.0"], lambda line: None))

    result = subprocess.run([str(python), "-c", "import bw_test_only; print(bw_test_only.X)"],
                            capture_output=True, text=True, check=False)
    assert result.stdout.strip() == "2"


def test_an_environment_is_like_bodyworks_image_and_is_reused(tmp_path: Path) -> None:
    # A package that imports pkg_resources when it is imported, as dash 2.x and many older ones do.
    legacy = wheel(tmp_path / "wheels", "legacy-plugin", "1.0", {
        "legacy_plugin/__init__.py": "import pkg_resources\nVERSION = pkg_resources.get_distribution"
        "('legacy-plugin').version\n",
    })
    cache = VenvCache(tmp_path / "cache" / "venvs")
    logs: list[str] = []

    first = asyncio.run(cache.ensure([str(legacy)], logs.append))
    assert any(line.startswith("uv: Installed") for line in logs)
    logs.clear()
    second = asyncio.run(cache.ensure([str(legacy)], logs.append))

    assert second == first
    assert logs == []
    check = "import legacy_plugin, pip; print(legacy_plugin.VERSION)"
    result = subprocess.run([str(second), "-c", check], capture_output=True, text=True, check=False)
    assert result.stdout.strip() == "1.0", result.stderr


@pytest.fixture
def local_index(tmp_path: Path) -> Iterator[str]:
    """A package index (PEP 503 simple layout) served over HTTP on loopback."""
    root = tmp_path / "index"
    project = root / "simple" / "bodywork-test-only-package"
    built = wheel(project, "bodywork-test-only-package", "2.0", {"bw_test_only/__init__.py": "X = 2\n"})
    project.joinpath("index.html").write_text(f'<a href="{built.name}">{built.name}</a>')
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/simple"
    server.shutdown()
    server.server_close()


def test_pip_index_url_is_honoured(
    tmp_path: Path, local_index: str, seed_wheels: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only this index has the package: installing it proves uv used PIP_INDEX_URL.
    monkeypatch.setenv("PIP_INDEX_URL", local_index)
    monkeypatch.setenv("PIP_FIND_LINKS", str(seed_wheels))
    cache = VenvCache(tmp_path / "cache" / "venvs")

    python = asyncio.run(cache.ensure(["bodywork-test-only-package==2.0"], lambda line: None))

    result = subprocess.run([str(python), "-c", "import bw_test_only; print(bw_test_only.X)"],
                            capture_output=True, text=True, check=False)
    assert result.stdout.strip() == "2"


@pytest.fixture(scope="session")
def seed_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pip and setuptools as wheels on disk, for installs from an index that has neither."""
    links = tmp_path_factory.mktemp("seed-wheels")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", str(links),
         "pip", "setuptools<81"],
        check=True, capture_output=True,
    )
    return links


def test_a_package_without_a_wheel_for_this_python_is_named_with_the_fix(
    tmp_path: Path, seed_wheels: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    links = tmp_path / "links"
    failing_sdist(links, "oldnumeric", "1.19.5", "error: Microsoft Visual C++ 14.0 or GCC 4.8 is required")
    monkeypatch.setenv("PIP_FIND_LINKS", f"{links} {seed_wheels}")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    cache = VenvCache(tmp_path / "cache" / "venvs")
    logs: list[str] = []

    with pytest.raises(StageError) as raised:
        asyncio.run(cache.ensure(["oldnumeric==1.19.5"], logs.append))

    message = str(raised.value)
    assert message.startswith(
        "installing the requirements failed: oldnumeric==1.19.5 has no wheel for Python 3.11 on this "
        "platform, so it was built from source, and that build failed; set pipeline.python_version to "
        "the Python the pipeline was written for"
    )
    log_file = Path(message.rsplit(" in full in ", 1)[1])
    assert "GCC 4.8 is required" in log_file.read_text()
    assert any("GCC 4.8 is required" in line for line in logs)  # shown in the stage log too
    assert not list((tmp_path / "cache" / "venvs").glob("*/bodywork-complete.json"))


def test_an_unknown_package_is_named(
    tmp_path: Path, seed_wheels: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIP_FIND_LINKS", str(seed_wheels))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    cache = VenvCache(tmp_path / "cache" / "venvs")

    with pytest.raises(StageError) as raised:
        asyncio.run(cache.ensure(["no-such-package-anywhere==1.0"], lambda line: None))

    assert str(raised.value).startswith(
        "installing the requirements failed: no package named no-such-package-anywhere was found on "
        "the index; check the name and version of no-such-package-anywhere in the stage's requirements"
    )


def test_a_package_for_another_python_says_so(
    tmp_path: Path, seed_wheels: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    links = tmp_path / "links"
    wheel(links, "future-only", "2.0", {"future_only/__init__.py": ""}, requires_python=">=3.99")
    monkeypatch.setenv("PIP_FIND_LINKS", f"{links} {seed_wheels}")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    cache = VenvCache(tmp_path / "cache" / "venvs")

    with pytest.raises(StageError) as raised:
        asyncio.run(cache.ensure(["future-only==2.0"], lambda line: None))

    assert str(raised.value).startswith(
        "installing the requirements failed: future-only==2.0 needs another Python (Python >=3.99) than "
        "3.11; set pipeline.python_version to the Python the pipeline was written for"
    )
