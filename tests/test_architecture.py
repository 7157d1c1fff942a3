"""The layers of `lib/` and the direction of their imports, checked from the source.

docs/architecture.md draws them: core <- journal, hub <- worker <- receiver <- ui, tools. A module
may import its own layer and the layers below, never above or beside, so each layer can be read,
tested and replaced knowing only what is under it. The package front (`lib/__init__.py`,
`lib/webhooks_server.py`) and the command entry points are the one place allowed to join the top
layers. Imports under `if TYPE_CHECKING:` are annotations only and do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parent.parent / "lib"

LAYERS = {"core": 0, "journal": 1, "hub": 1, "worker": 2, "ops": 2, "receiver": 3, "ui": 4, "tools": 4}
"""How high each sub-package sits. Equal ranks are siblings, which must not import each other."""
FRONT = {"__init__", "webhooks_server", "send", "job", "testing"}
"""Top-level modules of `lib/` that put the layers together for users: they may import any layer."""


def layer_of(module: str) -> str | None:
    """The layer of a dotted module name under `lib` (`lib.core.payload` -> `core`), None for the front."""
    parts = module.split(".")
    if parts[0] != "lib" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in LAYERS else None


def module_name(path: Path, lib: Path = LIB) -> str:
    relative = path.relative_to(lib.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def runtime_imports(path: Path, lib: Path = LIB) -> list[tuple[int, str]]:
    """(line, absolute module) for every import of `lib` in the file, deferred ones included."""
    tree = ast.parse(path.read_text(), filename=str(path))
    name = module_name(path, lib).split(".")
    package = name if path.name == "__init__.py" else name[:-1]
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join([*base, node.module] if node.module else base)
            if node.module is None:  # `from . import x`: each name is a module
                found.extend((node.lineno, f"{target}.{alias.name}") for alias in node.names)
            else:
                found.append((node.lineno, target))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return [(line, name) for line, name in found if name == "lib" or name.startswith("lib.")]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


MODULES = sorted(LIB.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(LIB)))
def test_imports_point_down_the_layers(path: Path) -> None:
    here = layer_of(module_name(path))
    if here is None:
        assert path.parent == LIB and path.stem in FRONT, f"{path}: a module outside the layers and the front"
        return
    wrong = []
    for line, target in runtime_imports(path):
        there = layer_of(target)
        if there is None:
            wrong.append(f"line {line}: imports the package front {target}")
        elif there != here and LAYERS[there] >= LAYERS[here]:
            wrong.append(f"line {line}: {here} imports {target} ({there} is not below {here})")
    assert not wrong, f"{path.relative_to(LIB.parent)}:\n" + "\n".join(wrong)


def test_the_layers_have_no_import_cycle() -> None:
    graph: dict[str, set[str]] = {}
    names = {module_name(path) for path in MODULES}
    for path in MODULES:
        graph[module_name(path)] = {target for _, target in runtime_imports(path) if target in names}
    visiting: list[str] = []
    done: set[str] = set()

    def walk(module: str) -> None:
        if module in done:
            return
        assert module not in visiting, "import cycle: " + " -> ".join([*visiting[visiting.index(module) :], module])
        visiting.append(module)
        for target in sorted(graph.get(module, ())):
            walk(target)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        walk(module)


MAX_MODULE_LINES = 500


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(LIB)))
def test_every_module_can_be_read_in_a_sitting(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(LIB.parent)} has {lines} lines: split it by concern"


def test_the_checker_sees_upward_deferred_and_type_checking_imports(tmp_path: Path) -> None:
    """The rules above can fail: what they must catch is caught, what they must ignore is ignored."""
    module = tmp_path / "lib" / "core" / "bad.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import payload\n"
        "if TYPE_CHECKING:\n"
        "    from ..ui.view import ServerView\n"
        "def later():\n"
        "    from ..receiver.server import WebhookReceiver\n"
    )
    assert runtime_imports(module, tmp_path / "lib") == [(2, "lib.core.payload"), (6, "lib.receiver.server")]
    assert layer_of("lib.receiver.server") == "receiver" and LAYERS["receiver"] > LAYERS["core"]


def test_every_error_we_define_has_the_one_root() -> None:
    """`except HubWebhooksError` catches anything we raise on purpose (lib/core/errors.py)."""
    import importlib
    import inspect

    from lib.core.errors import HubWebhooksError

    strays = []
    for path in MODULES:
        module = importlib.import_module(module_name(path))
        for name, value in vars(module).items():
            ours = inspect.isclass(value) and value.__module__ == module.__name__
            if ours and issubclass(value, BaseException) and not issubclass(value, HubWebhooksError):
                strays.append(f"{module.__name__}.{name}")
    assert strays == []
