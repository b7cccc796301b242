"""The Kubernetes package's layers contract (pyproject.toml, in the order of the package docstring):
kept by the tree (tests/structure/test_contracts.py), broken by each kind of wrong import here: a pure
module reaching up to I/O, a reducer reaching up to its shell, and two siblings of one layer meeting."""

from __future__ import annotations

from pathlib import Path

import pytest

import runner.backends.kubernetes as package
from tests.structure.test_contracts import contracts, lint_imports, tree_copy  # noqa: F401 (a fixture)

CONTRACT = "the Kubernetes backend's modules are layered"

pytestmark = pytest.mark.timeout(60)


def test_the_contract_lists_every_module_in_the_docstring_order() -> None:
    (contract,) = [c for c in contracts() if c["name"] == CONTRACT]
    layers = [[name.strip() for name in layer.split("|")] for layer in contract["layers"]]
    modules = {p.stem for p in Path(package.__file__).parent.glob("*.py")} - {"__init__", "bootstrap"}
    assert sorted(name for layer in layers for name in layer) == sorted(modules)
    documented = [line.split("—")[0] for line in (package.__doc__ or "").splitlines() if "—" in line]
    assert [[n.strip(" `0123456789.") for n in line.split("|")] for line in documented] == layers


WRONG_IMPORTS = [
    ("status.py", "from runner.backends.kubernetes import api"),
    ("rollout_progress.py", "from runner.backends.kubernetes import services"),
    ("jobs.py", "from runner.backends.kubernetes import services"),
]


@pytest.mark.parametrize(("module", "line"), WRONG_IMPORTS, ids=[w[0] for w in WRONG_IMPORTS])
def test_a_wrong_import_breaks_the_layers(tree_copy: Path, module: str, line: str) -> None:  # noqa: F811
    path = tree_copy / "runner" / "backends" / "kubernetes" / module
    path.write_text(path.read_text() + f"\n{line}  # deliberately wrong\n")

    result = lint_imports(tree_copy)

    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{CONTRACT} BROKEN" in result.stdout, result.stdout
    assert f"runner.backends.kubernetes.{module.removesuffix('.py')}" in result.stdout
