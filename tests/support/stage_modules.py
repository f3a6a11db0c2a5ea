"""Which ``ml/`` source files a DVC stage runs: a static read of the import graph.

A stage's command is ``python -m ml <step> [<model>]``. Its entry modules are the module of the
step's handler (found through ``ml.cli``'s command tree, as the parser finds it) and
``ml.core.config`` (every step's params are loaded and validated through it, defaults included).
From those, every ``import`` / ``from ... import`` is followed, at module level and inside functions
alike (the handlers import their heavy modules on use), plus ``importlib.import_module("ml.x")``
with a literal name. Imports under ``if TYPE_CHECKING:`` never run and are not followed.
Importing ``ml.a.b`` also runs ``ml/__init__.py`` and ``ml/a/__init__.py``: they are reachable,
but one holding nothing that runs (a docstring, constant assignments like ``__version__``) cannot
change a stage's result and need not be a dep; it must be one as soon as it gains code.

What this cannot see: a module imported by a name computed at run time (e.g. a dotted path
read from a table). ``ml.cli`` itself (the dispatcher that imports every step's module to build
the parser) is not counted: a stage depends on the step it runs, not on the registry of steps.

``python -m tests.support.stage_modules`` prints each stage's reachable files and whether
dvc.yaml covers them.
"""

from __future__ import annotations

import ast
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "ml"
# Run by every step before its handler (ml.cli.run_step / main: load_params).
COMMON_ENTRIES = ("ml.core.config",)


@dataclass(frozen=True)
class Stage:
    name: str
    argv: tuple[str, ...]  # after `python -m ml`
    deps: tuple[str, ...]


def load_stages(root: Path = REPO_ROOT) -> dict[str, Stage]:
    """dvc.yaml's stages that run ``python -m ml ...``."""
    document = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))
    stages: dict[str, Stage] = {}
    for name, spec in document["stages"].items():
        words = shlex.split(spec["cmd"])
        if words[:3] != ["python", "-m", PACKAGE]:
            continue
        deps = tuple(str(d) for d in spec.get("deps", []))
        stages[name] = Stage(name=name, argv=tuple(words[3:]), deps=deps)
    return stages


def handler_module(argv: Iterable[str]) -> str:
    """The module defining the handler ``python -m ml <argv>`` calls (via ml.cli's tree)."""
    import importlib

    from ml.cli import COMMAND_MODULES
    from ml.core.commands import CommandTree

    tree = CommandTree()
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(tree)
    words = [w for w in argv if not w.startswith("-")]
    families = tree.verbs[words[0]]
    command = families[None] if None in families else families[words[1]]
    return str(command.run.__module__)


def module_file(module: str, root: Path = REPO_ROOT) -> Path | None:
    """The source file of an ``ml`` module (a package's ``__init__.py``), None if none."""
    if module != PACKAGE and not module.startswith(PACKAGE + "."):
        return None
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Imports(ast.NodeVisitor):
    """Module names one source file imports when its code runs (any depth, not TYPE_CHECKING)."""

    def __init__(self, module: str, is_package: bool):
        self.package = module if is_package else module.rpartition(".")[0]
        self.found: set[str] = set()

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.found.update(alias.name for alias in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            parts = self.package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1])
            source = f"{base}.{node.module}" if node.module else base
        else:
            source = node.module or ""
        self.found.add(source)
        # `from ml.models.intent import baseline`: baseline may be a submodule.
        self.found.update(f"{source}.{alias.name}" for alias in node.names if alias.name != "*")

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        first = node.args[0] if node.args else None
        if (
            name == "import_module"
            and isinstance(first, ast.Constant)
            and isinstance(first.value, str)
        ):
            self.found.add(first.value)
        self.generic_visit(node)


def imports_of(path: Path, module: str) -> set[str]:
    visitor = _Imports(module, is_package=path.name == "__init__.py")
    visitor.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return visitor.found


def _with_parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def reachable_files(entries: Iterable[str], root: Path = REPO_ROOT) -> set[Path]:
    """Every ``ml/`` source file that importing ``entries`` can run (paths relative to root)."""
    seen: set[str] = set()
    todo = [m for entry in entries for m in _with_parents(entry)]
    files: set[Path] = set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = module_file(module, root)
        if path is None:
            continue
        files.add(path.relative_to(root))
        for imported in imports_of(path, module):
            todo.extend(m for m in _with_parents(imported) if m not in seen)
    return files


def is_inert(path: Path) -> bool:
    """A package ``__init__.py`` with nothing that runs: a docstring and constant assignments."""
    if path.name != "__init__.py":
        return False
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        plain = isinstance(node, ast.Expr | ast.Assign | ast.AnnAssign) and isinstance(
            node.value, ast.Constant
        )
        if not plain:
            return False
    return True


def stage_files(stage: Stage, root: Path = REPO_ROOT) -> set[Path]:
    """The ``ml/`` files ``stage``'s command runs (inert package ``__init__.py`` files left out)."""
    files = reachable_files([handler_module(stage.argv), *COMMON_ENTRIES], root)
    return {p for p in files if not is_inert(root / p)}


def covering_dep(path: Path, deps: Iterable[str]) -> str | None:
    """The dep (the file itself or a folder above it) that makes DVC hash ``path``."""
    for dep in deps:
        dep_path = Path(dep)
        if path == dep_path or dep_path in path.parents:
            return dep
    return None


def uncovered(stage: Stage, root: Path = REPO_ROOT) -> list[Path]:
    return sorted(p for p in stage_files(stage, root) if covering_dep(p, stage.deps) is None)


def main() -> None:
    for stage in load_stages().values():
        files = sorted(stage_files(stage))
        print(f"{stage.name}: python -m ml {' '.join(stage.argv)}")
        for path in files:
            print(f"  {path}  <- {covering_dep(path, stage.deps) or 'NOT A DEP'}")


if __name__ == "__main__":
    main()
