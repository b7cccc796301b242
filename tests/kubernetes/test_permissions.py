"""The RBAC the code needs, derived from the code itself, against the declared lists and the docs.

Every call the Kubernetes package makes on the API (``api.<method>("Kind", ...)``, also through
``asyncio.to_thread``, and ``watcher.watch`` / ``follow_log``) is read from the source with :mod:`ast`
and turned into (API group, resource, verb) through :data:`rest.CALL_VERBS`. The derived set must equal
:data:`rest.REQUIRED_PERMISSIONS` (the backend: every module but the CLI's :mod:`inventory`) and
:data:`rest.CLI_PERMISSIONS` (the commands: :mod:`inventory` and ``runner/commands``), and
docs/kubernetes.md must list exactly those. So a new call without its permission, a stale permission,
or a doc that lags behind each fail here.
"""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import runner.backends.kubernetes as package
from runner.backends.kubernetes import rest
from runner.backends.kubernetes.rest import CALL_VERBS, LOG_CALLS, RESOURCES, Permission

PACKAGE_DIR = Path(package.__file__).parent
DOC = Path(__file__).resolve().parents[2] / "docs" / "kubernetes.md"
# The generic mechanism: kinds reach these as parameters, from the callers scanned here.
ADAPTERS = {"api", "rest", "watching"}
COMMANDS_DIR = PACKAGE_DIR.parents[1] / "commands"
CLI_MODULES = {"inventory"} | {f"commands.{p.stem}" for p in COMMANDS_DIR.glob("*.py")}
NEVER_IMPORTED = {"bootstrap", "__init__"}  # the pod command; the package's facade
RECEIVERS = {"api", "_api", "watcher"}  # how the code names a KubeApi or a Watcher
NOT_REQUESTS = {"close", "next"}  # methods of those that send nothing to the API server


class UnknownCall(Exception):
    pass


def _receiver(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _kinds(
    arg: ast.expr, call: ast.Call, parents: dict[ast.AST, ast.AST], module: ModuleType
) -> tuple[str, ...]:
    """The kinds `arg` can be: a literal, or the variable of an enclosing loop (or comprehension) over
    constants of the module."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return (arg.value,)
    node: ast.AST | None = call
    while isinstance(arg, ast.Name) and node is not None:
        loops: list[ast.For | ast.comprehension] = [node] if isinstance(node, ast.For) else []
        if isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp):
            loops += node.generators
        for loop in loops:
            if isinstance(loop.target, ast.Name) and loop.target.id == arg.id:
                values = eval(compile(ast.Expression(loop.iter), "<kinds>", "eval"), vars(module))
                if isinstance(values, tuple) and all(isinstance(v, str) for v in values):
                    return values
        node = parents.get(node)
    raise UnknownCall(f"line {call.lineno}: cannot tell which kind {ast.unparse(arg)!r} is; pass a literal")


def calls_in(source: str, module: ModuleType) -> set[Permission]:
    """The permissions the API calls in `source` (the text of `module`) need."""
    tree = ast.parse(source)
    parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
    found: set[Permission] = set()
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        target, args = call.func, call.args
        if isinstance(target, ast.Attribute) and target.attr == "to_thread" and args:
            target, args = args[0], args[1:]
        if not isinstance(target, ast.Attribute) or _receiver(target.value) not in RECEIVERS:
            continue
        method = target.attr
        if method in LOG_CALLS:
            found.add(Permission("", "pods/log", "get"))
        elif method in CALL_VERBS:
            for kind in _kinds(args[0], call, parents, module):
                resource = RESOURCES[kind]
                found.update(Permission(resource.group, resource.plural, v) for v in CALL_VERBS[method])
        elif method not in NOT_REQUESTS:
            raise UnknownCall(f"line {call.lineno}: {method}() is not in rest.CALL_VERBS or LOG_CALLS")
    return found


def modules() -> Iterator[tuple[str, ModuleType, str]]:
    """The package's modules (but the adapters) and the CLI commands, as (name, module, source)."""
    for path in sorted(PACKAGE_DIR.glob("*.py")):
        name = path.stem
        if name not in ADAPTERS | NEVER_IMPORTED:
            yield name, importlib.import_module(f"{package.__name__}.{name}"), path.read_text()
    for path in sorted(COMMANDS_DIR.glob("*.py")):
        module = importlib.import_module(f"runner.commands.{path.stem}")
        yield f"commands.{path.stem}", module, path.read_text()


def derived(selected: set[str] | None = None, excluded: frozenset[str] = frozenset()) -> set[Permission]:
    found: set[Permission] = set()
    for name, module, source in modules():
        if (selected is None or name in selected) and name not in excluded:
            try:
                found |= calls_in(source, module)
            except UnknownCall as error:
                raise UnknownCall(f"{name}.py {error}") from None
    return found


def test_the_backend_needs_exactly_the_required_permissions() -> None:
    assert sorted(derived(excluded=frozenset(CLI_MODULES))) == sorted(rest.REQUIRED_PERMISSIONS)


def test_the_commands_need_exactly_the_cli_permissions() -> None:
    assert sorted(derived(CLI_MODULES)) == sorted(rest.CLI_PERMISSIONS)


def test_the_derivation_sees_loops_threads_and_watches_and_refuses_what_it_cannot_resolve() -> None:
    source = """
import asyncio
KINDS = ("Job", "ConfigMap")
async def f(api, watcher, kind):
    for k in KINDS:
        api.delete(k, "x")
    await asyncio.to_thread(api.replace, "Secret", "n", {}, "ns")
    watcher.watch("Pod", "ns")
    watcher.follow_log("ns", "p", "k")
    {}.get("Job")
"""
    module = ModuleType("fake")
    module.KINDS = ("Job", "ConfigMap")  # type: ignore[attr-defined]
    assert calls_in(source, module) == {
        Permission("batch", "jobs", "delete"),
        Permission("", "configmaps", "delete"),
        Permission("", "secrets", "update"),
        Permission("", "pods", "list"),
        Permission("", "pods", "watch"),
        Permission("", "pods/log", "get"),
    }
    with pytest.raises(UnknownCall, match="cannot tell which kind 'kind'"):
        calls_in("def f(api, kind):\n    api.get(kind, 'x')\n", module)
    with pytest.raises(UnknownCall, match=r"service_proxy\(\) is not in rest.CALL_VERBS"):
        calls_in("def f(api):\n    api.service_proxy('GET', 'ns', 's', 80)\n", module)


def documented(heading: str) -> set[Permission]:
    """The (group, resource, verbs) rows of the table under `heading` in the doc's RBAC section."""
    text = DOC.read_text()
    section = text.split("## RBAC the runner needs", 1)[1].split("\n## ", 1)[0]
    table = section.split(heading, 1)[1].split("\n### ", 1)[0]
    found: set[Permission] = set()
    for line in table.splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or cells[0] in ("API group", "") or set(cells[0]) <= {"-"}:
            continue
        group = "" if cells[0] == "core" else cells[0]
        found.update(Permission(group, cells[1], verb) for verb in re.split(r"[,\s]+", cells[2]) if verb)
    return found


def test_the_doc_lists_every_permission_the_backend_needs_and_no_other() -> None:
    assert sorted(documented("### The service (the backend)")) == sorted(rest.REQUIRED_PERMISSIONS)


def test_the_doc_lists_every_permission_the_commands_need_and_no_other() -> None:
    assert sorted(documented("### The commands")) == sorted(rest.CLI_PERMISSIONS)


def test_policy_rules_group_the_verbs_per_resource() -> None:
    rules = rest.policy_rules(rest.REQUIRED_PERMISSIONS)
    jobs = next(r for r in rules if r["resources"] == ["jobs"])
    assert jobs == {
        "apiGroups": ["batch"],
        "resources": ["jobs"],
        "verbs": sorted(p.verb for p in rest.REQUIRED_PERMISSIONS if p.resource == "jobs"),
    }
    assert {p for r in rules for p in _expand(r)} == set(rest.REQUIRED_PERMISSIONS)


def _expand(rule: dict[str, list[str]]) -> Iterator[Permission]:
    for group in rule["apiGroups"]:
        for resource in rule["resources"]:
            for verb in rule["verbs"]:
                yield Permission(group, resource, verb)
