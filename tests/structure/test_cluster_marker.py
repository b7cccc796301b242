"""The `kubernetes` marker follows the cluster fixture (tests/conftest.py), which scripts/test relies on
to prepare the cluster only when a selected test needs it.

Each case runs pytest on a small suite in a temporary folder with the real hooks and a stand-in
``kube_cluster`` fixture (no cluster is involved), and reads what pytest selected and reported.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(60)

FIXTURES = '''
import pytest

@pytest.fixture(scope="session")
def kube_cluster():
    return "stand-in"

@pytest.fixture
def namespace(kube_cluster):
    return "ns"
'''

TESTS = '''
import pytest

def test_direct(kube_cluster):
    pass

def test_through_another_fixture(namespace):
    pass

def test_plain():
    pass
'''

MISMARKED = '''
import pytest

@pytest.mark.kubernetes
def test_marked_by_hand_without_the_cluster():
    pass
'''


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\naddopts = -p no:cacheprovider --strict-markers\nmarkers =\n    kubernetes: the cluster\n"
    )
    (tmp_path / "cluster").mkdir()
    (tmp_path / "cluster" / "conftest.py").write_text(FIXTURES)
    (tmp_path / "cluster" / "test_uses.py").write_text(TESTS)
    return tmp_path


def pytest_run(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", *args],
        cwd=folder, capture_output=True, text=True, timeout=50,
    )


def test_tests_using_the_fixture_directly_or_not_are_marked(suite: Path) -> None:
    selected = pytest_run(suite, "-m", "kubernetes")
    assert "PASSED cluster/test_uses.py::test_direct" in selected.stdout, selected.stdout
    assert "PASSED cluster/test_uses.py::test_through_another_fixture" in selected.stdout
    assert "2 passed, 1 deselected" in selected.stdout

    others = pytest_run(suite, "-m", "not kubernetes")
    assert "PASSED cluster/test_uses.py::test_plain" in others.stdout, others.stdout
    assert "1 passed, 2 deselected" in others.stdout


@pytest.mark.parametrize(
    ("args", "count"),
    [
        ((), 2),
        (("-k", "plain"), 0),
        (("-k", "direct"), 1),
        (("-m", "not kubernetes"), 0),
        (("cluster/test_uses.py::test_through_another_fixture",), 1),
    ],
)
def test_the_need_file_counts_the_selected_tests_that_use_the_cluster(
    suite: Path, args: tuple[str, ...], count: int
) -> None:
    need = suite / "need"
    result = pytest_run(suite, "--collect-only", f"--cluster-need-file={need}", *args)
    assert result.returncode in (0, 5), result.stdout + result.stderr  # 5: nothing selected
    assert need.read_text() == f"{count}\n"


def test_a_hand_written_marker_without_the_fixture_fails_the_test(suite: Path) -> None:
    (suite / "test_mismarked.py").write_text(MISMARKED)

    result = pytest_run(suite, "test_mismarked.py")

    assert result.returncode == 1
    assert (
        "test_mismarked.py::test_marked_by_hand_without_the_cluster is marked kubernetes but does not "
        "use the kube_cluster fixture; remove the marker"
    ) in result.stdout, result.stdout
