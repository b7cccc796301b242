"""ChatOps knows backends by their capabilities (runner.backends.base), never by name: no module of
chatops/ imports a backend's own modules, compares a backend's name, or probes a backend with getattr;
both backends declare the ServiceInventory capability; and a service on the local backend never loads
the Kubernetes client."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from runner.backends import BACKEND_NAMES
from runner.backends.base import ServiceInventory

if TYPE_CHECKING:
    from runner.backends.kubernetes import KubernetesBackend
    from runner.backends.local import LocalBackend

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ROOT / "runner" / "backends"

pytestmark = pytest.mark.timeout(60)


def chatops_modules() -> list[Path]:
    found = sorted((ROOT / "chatops").rglob("*.py"))
    assert found, "no chatops modules found"
    return found


def imported(node: ast.AST) -> list[str]:
    """The modules an import names: `from a import b` names a and, if b is a module, a.b."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and not node.level:
        return [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return []


def backend_module(module: str) -> str | None:
    """The backend module (of runner/backends/, base.py aside) that `module` is or is inside of."""
    parts = module.split(".")
    if parts[:2] != ["runner", "backends"] or len(parts) < 3 or parts[2] == "base":
        return None
    own = BACKENDS / parts[2]
    return ".".join(parts[:3]) if own.is_dir() or own.with_suffix(".py").exists() else None


def problems(path: Path) -> list[str]:
    """Each backend import, backend name comparison and getattr on a backend in the module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        line = f"{path.name}:{getattr(node, 'lineno', '?')}"
        found += [f"{line}: imports {m}" for m in imported(node) if backend_module(m) is not None]
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            literals = {n.value for o in operands for n in ast.walk(o) if isinstance(n, ast.Constant)}
            if literals & set(BACKEND_NAMES):
                found.append(f"{line}: compares with a backend's name: {ast.unparse(node)}")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr")
            and node.args
            and "backend" in ast.unparse(node.args[0])
        ):
            found.append(f"{line}: probes the backend: {ast.unparse(node)}")
    return found


def test_chatops_asks_backends_through_their_capabilities_only() -> None:
    found = [problem for path in chatops_modules() for problem in problems(path)]
    assert found == [], "use the protocols of runner/backends/base.py (isinstance):\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("line", "allowed"),
    [
        ("from runner.backends.kubernetes.inventory import delete_service", False),
        ("import runner.backends.local", False),
        ("from runner.backends import kubernetes", False),
        ('x = getattr(backend, "name", "") == "kubernetes"', False),
        ("y = self.service.backend.name in ('local', 'other')", False),
        ('z = hasattr(self.service.backend, "remove_service")', False),
        ("from runner.backends.base import ServiceInventory, SourceServer", True),
        ("from runner.backends import create_backend", True),
        ('w = getattr(settings, "name", "") == "acme"', True),
    ],
)
def test_each_kind_of_backend_special_case_is_found(tmp_path: Path, line: str, allowed: bool) -> None:
    module = tmp_path / "wrong.py"
    module.write_text(f"def f(self, backend, settings):\n    {line}\n")
    assert (problems(module) == []) is allowed, problems(module)


def test_both_backends_declare_the_service_inventory() -> None:
    from runner.backends.kubernetes import KubernetesBackend
    from runner.backends.local import LocalBackend

    assert issubclass(LocalBackend, ServiceInventory)
    assert issubclass(KubernetesBackend, ServiceInventory)


def _statically(local: LocalBackend, kube: KubernetesBackend) -> list[ServiceInventory]:
    """Never called: mypy checks here that each backend implements the protocol's signatures."""
    return [local, kube]


LOCAL_SERVICE = """
import asyncio, sys, tempfile
from pathlib import Path

import chatops.extension, chatops.service_ops, gitops.cli, gitops.service
from runner.backends import create_backend
from runner.backends.base import ServiceInventory

async def main():
    folder = Path(tempfile.mkdtemp())
    backend = create_backend("local", cache_dir=folder / "cache", state_dir=folder / "state")
    assert isinstance(backend, ServiceInventory)
    assert await backend.list_services() == set()
    assert await backend.remove_service("env", "serve") is None
    await backend.close()

asyncio.run(main())
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("kubernetes", "urllib3")
                or m.startswith("runner.backends.kubernetes"))
print(loaded)
"""


def test_a_service_on_the_local_backend_never_loads_the_kubernetes_client() -> None:
    result = subprocess.run(
        [sys.executable, "-c", LOCAL_SERVICE], cwd=ROOT, capture_output=True, text=True, timeout=50
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
