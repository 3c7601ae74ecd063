"""The tree tells the architecture: parts import one way, no cycles, small modules.

Parts (see docs/architecture.md): the runtime core (``_runtime``), ``s3`` and ``_handler``,
the public entry points, and, on the build machine only, ``build``, ``testing``, the CLI and
the demo. What runs in Lambda never imports what does not ship there.
"""

from __future__ import annotations

import ast
import os
import zipfile
from pathlib import Path

import pytest

from lambdaenv import run
from lambdaslim.build._layer_python import RUNTIME_PARTS, package_files

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "lambdaslim"
BUILD_SIDE = ("lambdaslim.build", "lambdaslim.testing", "lambdaslim._cli", "lambdaslim._demo", "lambdaslim.__main__")
MAX_LINES = 400


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(root: Path = PACKAGE) -> dict[str, Path]:
    return {_module_name(p): p for p in root.rglob("*.py") if "__pycache__" not in p.parts}


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    """ids of import nodes under ``if TYPE_CHECKING:`` (never run)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                for sub in ast.walk(child):
                    skip.add(id(sub))
    return skip


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> modules of the package it imports anywhere (top level or inside a function)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _type_checking_nodes(tree)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                subs = [f"{mod}.{a.name}" for a in node.names]
                # "from pkg import _sub" imports the submodule; pkg itself only for other names
                targets = subs + ([mod] if any(t not in modules for t in subs) else [])
            elif (isinstance(node, ast.Call) and ast.unparse(node.func).endswith("import_module")
                  and node.args and isinstance(node.args[0], ast.Constant)):
                targets = [str(node.args[0].value)]
            edges.update(t for t in targets if t in modules and t != name)
        graph[name] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _is_build_side(module: str) -> bool:
    return any(module == b or module.startswith(b + ".") for b in BUILD_SIDE)


def test_no_import_cycles() -> None:
    assert _cycles(import_graph(_modules())) == []


def test_cycle_finder_finds_a_cycle(tmp_path: Path) -> None:
    """The check above could not fail if the graph missed function-level or relative imports."""
    pkg = tmp_path / "lambdaslim"
    (pkg / "part").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "part" / "__init__.py").write_text("")
    (pkg / "part" / "_a.py").write_text("def f():\n    from ._b import g\n")
    (pkg / "part" / "_b.py").write_text("from . import _a\n")
    modules = {_module_name_in(p, pkg): p for p in pkg.rglob("*.py")}
    assert _cycles(import_graph(modules)) == [["lambdaslim.part._a", "lambdaslim.part._b"]]


def _module_name_in(path: Path, pkg: Path) -> str:
    parts = list(path.relative_to(pkg.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_runtime_never_imports_the_build_side() -> None:
    graph = import_graph(_modules())
    shipped = {_module_name(PACKAGE.parent / rel) for _, rel in package_files() if rel.endswith(".py")}
    assert "lambdaslim._runtime._finder" in shipped and "lambdaslim.s3" in shipped
    assert not any(_is_build_side(m) for m in shipped)
    bad = {m: sorted(t for t in graph[m] if _is_build_side(t)) for m in sorted(shipped)}
    assert {m: t for m, t in bad.items() if t} == {}


def test_runtime_core_imports_neither_s3_nor_the_handler() -> None:
    graph = import_graph(_modules())
    core = [m for m in graph if m.startswith("lambdaslim._runtime")]
    bad = {m: sorted(t for t in graph[m] if not t.startswith(("lambdaslim._runtime", "lambdaslim._errors",
                                                              "lambdaslim._size")))
           for m in core}
    assert {m: t for m, t in bad.items() if t} == {}


def test_every_module_of_the_package_is_in_a_part() -> None:
    loose = sorted(m for m in _modules() if m.count(".") == 1 and not _is_build_side(m)
                   and m.split(".")[1] + ".py" not in RUNTIME_PARTS and m.split(".")[1] not in RUNTIME_PARTS)
    assert loose == []


def test_modules_are_small() -> None:
    big = {name: n for name, path in _modules().items()
           if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert big == {}


@pytest.fixture(scope="module")
def six_layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from conftest import pip_target
    from lambdaslim.build import pack_tree

    layer = tmp_path_factory.mktemp("six") / "layer.zip"
    pack_tree(str(pip_target(["six"])), str(layer), level=1, quiet=True)
    return layer


def test_layer_copy_alone_runs_bootstrap_handler_and_s3(tmp_path: Path, six_layer: Path) -> None:
    """A layer's python/ holds what a handler needs, with nothing else on sys.path.

    ``python -S`` (tests/lambdaenv.py): no site-packages; the only path entries are the
    standard library, the layer's python/ and the task folder.
    """
    opt = tmp_path / "opt"
    with zipfile.ZipFile(six_layer) as zf:
        zf.extractall(opt)
    names = {p.relative_to(opt / "python").as_posix() for p in (opt / "python").rglob("*") if p.is_file()}
    assert not [n for n in names if n.startswith(("lambdaslim/build/", "lambdaslim/testing/"))]
    assert not [n for n in names if n.startswith(("zstandard/", "filelock/")) or ".dist-info/" in n]
    task = tmp_path / "task"
    task.mkdir()
    (task / "app.py").write_text(
        "import lambdaslim.bootstrap\n"
        "import lambdaslim, lambdaslim.budget\n"
        "from lambdaslim import s3\n"
        "import six\n"
        "@lambdaslim.handler\n"
        "def handler(event, context):\n"
        "    folder = lambdaslim.scratch()\n"
        "    return {'six': six.__file__, 'url': s3.parse_url('s3://my-bucket/k'), 'scratch': folder,\n"
        "            'usage': lambdaslim.budget.usage()['packages'] > 0}\n"
    )
    code = (
        "import sys, app\n"
        "out = app.handler({}, None)\n"
        "mods = sorted(m for m in sys.modules if m.split('.')[0] in ('zstandard', 'filelock', 'six'))\n"
        "report([out, mods, [m for m in sys.modules if m.startswith('lambdaslim._vendor.')][:1]])\n"
    )
    out, mods, vendored = run(code, opt, tmp_path / "tmp", PYTHONPATH=f"{opt / 'python'}{os.pathsep}{task}")
    assert out["six"].startswith(str(tmp_path / "tmp")) and out["url"] == ["my-bucket", "k"] and out["usage"]
    assert mods == ["six"]  # our zstandard and filelock are private: the function's names stay free
    assert vendored  # and they are what the extraction used


def test_the_functions_own_filelock_is_not_shadowed(tmp_path: Path) -> None:
    """A function that packs another filelock imports its own; metadata lists it once; the
    report says which copy the function gets; lambdaslim still locks with its private copy."""
    from conftest import pip_target
    from lambdaslim.build import pack_tree, report

    layer = tmp_path / "layer.zip"
    pack_tree(str(pip_target(["filelock==3.12.0"])), str(layer), level=1, quiet=True)
    imports = report(str(layer))["runtime"]["function_imports"]
    assert imports["filelock"] == {"source": "layer", "distribution": "filelock", "version": "3.12.0"}
    assert imports["zstandard"] == {"source": None}
    opt = tmp_path / "opt"
    with zipfile.ZipFile(layer) as zf:
        zf.extractall(opt)
    code = (
        "import sys, lambdaslim.bootstrap, importlib.metadata as md\n"
        "import filelock\n"
        "names = [d.metadata['Name'] for d in md.distributions()]\n"
        "report([filelock.__version__, filelock.__file__, names.count('filelock'),\n"
        "        md.version('filelock'), 'lambdaslim._vendor.filelock' in sys.modules])\n"
    )
    version, path, count, md_version, private_loaded = run(code, opt, tmp_path / "tmp")
    assert version == "3.12.0" and path.startswith(str(tmp_path / "tmp")) and count == 1 and md_version == "3.12.0"
    assert private_loaded  # extracting the user's filelock took lambdaslim's own lock
