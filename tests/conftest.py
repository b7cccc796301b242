"""Suite-wide hooks: the `kubernetes` marker follows the cluster fixture (and `browser` the browser).

A test is marked `kubernetes` exactly when its fixture closure includes ``kube_cluster`` (the real
test cluster, tests/kubernetes/conftest.py), wherever the test lives; a hand-written marker on a test
that does not use the fixture fails that test. So ``-m kubernetes`` and ``-m "not kubernetes"`` select
by what a test really needs, and scripts/test asks (``--cluster-need-file``) whether any selected test
needs the cluster before it prepares one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

CLUSTER_FIXTURE = "kube_cluster"
BROWSER_FIXTURE = "browser"
"""Headless Chromium (tests/pages/conftest.py): its tests are marked `browser` the same way, and
scripts/test installs Debian's chromium only when one is selected (``--browser-need-file``)."""
_MISMARKED = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--cluster-need-file",
        metavar="PATH",
        help="write to PATH how many selected tests use the Kubernetes test cluster (for scripts/test)",
    )
    parser.addoption(
        "--browser-need-file",
        metavar="PATH",
        help="write to PATH how many selected tests drive headless Chromium (for scripts/test)",
    )


def uses_cluster(item: pytest.Item) -> bool:
    return CLUSTER_FIXTURE in getattr(item, "fixturenames", ())


# tryfirst: the markers are in place before `-m` deselects by them.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if BROWSER_FIXTURE in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)
        marked = item.get_closest_marker("kubernetes") is not None
        if uses_cluster(item):
            item.add_marker(pytest.mark.kubernetes)
        elif marked:
            item.stash[_MISMARKED] = (
                f"{item.nodeid} is marked kubernetes but does not use the {CLUSTER_FIXTURE} fixture; "
                "remove the marker (it is added automatically to the tests that use the fixture)"
            )


def pytest_collection_finish(session: pytest.Session) -> None:
    need_file = session.config.getoption("--cluster-need-file")
    if need_file:
        needing = [item for item in session.items if item.get_closest_marker("kubernetes")]
        Path(need_file).write_text(f"{len(needing)}\n")
    browser_file = session.config.getoption("--browser-need-file")
    if browser_file:
        browsing = [item for item in session.items if item.get_closest_marker("browser")]
        Path(browser_file).write_text(f"{len(browsing)}\n")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    mismarked = item.stash.get(_MISMARKED, None)
    if mismarked is not None:
        pytest.fail(mismarked, pytrace=False)
    if uses_cluster(item) and item.get_closest_marker("kubernetes") is None:
        pytest.fail(f"{item.nodeid} uses the {CLUSTER_FIXTURE} fixture but lost its kubernetes marker",
                    pytrace=False)
