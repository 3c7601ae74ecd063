"""The documentation site: built strictly, and its reference pages checked against the code.

The API and CLI references are generated at build time by docs/_hooks/lambdaslim_docs.py;
these tests check the built HTML lists every public name, fixture, command and option, and
that docs/troubleshooting.md has an entry for every error class in the code.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import html
import importlib
import importlib.util
import inspect
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SRC = ROOT / "src" / "lambdaslim"


def _hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lambdaslim_docs_hook", DOCS / "_hooks" / "lambdaslim_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``mkdocs build --strict`` of this checkout (skipped without the ``docs`` extra)."""
    pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install -e '.[docs]')")
    pytest.importorskip("mkdocstrings_handlers.python")
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return out


def _page(site: Path, name: str) -> str:
    return (site / name / "index.html").read_text(encoding="utf-8")


# --- the CLI reference ----------------------------------------------------------------------


def _commands_and_options(parser: argparse.ArgumentParser, prefix: str = "lambdaslim") -> dict[str, set[str]]:
    """command line -> its option strings and positional names, walking every subparser."""
    out: dict[str, set[str]] = {prefix: set()}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out.update(_commands_and_options(sub, f"{prefix} {name}"))
        elif action.option_strings:
            out[prefix].update(action.option_strings)
        else:
            out[prefix].add(str(action.metavar or action.dest))
    return out


def test_cli_reference_page_lists_every_command_and_option(site: Path) -> None:
    from lambdaslim._cli import build_parser

    text = html.unescape(re.sub(r"<[^>]+>", "", _page(site, "cli")))
    wanted = _commands_and_options(build_parser())
    assert len(wanted) >= 5, wanted  # lambdaslim, pack, inspect, verify, demo
    missing = []
    for command, options in wanted.items():
        section = text
        if command != "lambdaslim":
            start = text.find(f"{command}¶")  # the command's heading (permalink sign after it)
            assert start >= 0, f"no section for {command!r}"
            section = text[start:]
            for other in wanted:  # up to the next command's heading
                end = section.find(f"{other}¶", 1)
                if other != command and end > 0:
                    section = section[:end]
        missing += [f"{command} {opt}" for opt in sorted(options) if opt not in section]
    assert not missing, f"missing from docs/cli.md as built: {missing}"


def test_cli_reference_follows_the_parser() -> None:
    """A command or option added to the parser appears on the page without editing it."""
    from lambdaslim._cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    new = sub.add_parser("frobnicate", help="a command that does not exist")
    new.add_argument("--widget-count", type=int, default=7, help="how many widgets")
    pack = sub.choices["pack"]
    pack.add_argument("--brand-new-flag", action="append", help="something new")
    text = _hook().cli_markdown(parser)
    assert "## `lambdaslim frobnicate`" in text and "A command that does not exist." in text
    assert "| `--widget-count` | `WIDGET_COUNT` | how many widgets (default `7`) |" in text
    pack_section = text[text.index("## `lambdaslim pack`"):text.index("## `lambdaslim inspect`")]
    assert "`--brand-new-flag`" in pack_section and "repeatable" in pack_section


# --- the API reference ----------------------------------------------------------------------


def test_api_reference_documents_every_public_name_with_its_signature(site: Path) -> None:
    hook = _hook()
    page = _page(site, "api")
    headings = set(re.findall(r'<h\d id="([\w.]+)" class="doc doc-heading"', page))
    missing, unsigned = [], []
    for module_name in hook.API_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            ident = f"{module_name}.{name}"
            if ident not in headings:
                missing.append(ident)
                continue
            obj = getattr(module, name)
            if inspect.isroutine(obj):
                start = page.index(f'id="{ident}"')
                section = html.unescape(re.sub(r"<[^>]+>", "", page[start:start + 6000]))
                params = [p for p in inspect.signature(obj).parameters if p not in ("self",)]
                unsigned += [f"{ident}({p})" for p in params if p not in section]
    assert not missing, f"public names missing from the API reference: {missing}"
    assert not unsigned, f"parameters missing from the rendered signatures: {unsigned}"
    # types are rendered: the S3 reader's return annotation and a parameter's type
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    assert "scratch(need: int | str | None = None) -> str" in text


def test_api_reference_documents_every_fixture(site: Path) -> None:
    import lambdaslim.testing.plugin as plugin

    page = _page(site, "api")
    names = sorted(n for n, obj in vars(plugin).items() if not n.startswith("_")
                   and (hasattr(obj, "_fixture_function_marker") or hasattr(obj, "_pytestfixturefunction")))
    assert {"lambda_tmp", "lambda_context", "lambda_env", "lambda_runtime", "lambda_layers", "cold_start",
            "s3_server"} <= set(names)
    missing = [n for n in names if f'id="lambdaslim.testing.plugin.{n}"' not in page]
    assert not missing, f"fixtures missing from the API reference: {missing}"
    # what the test receives, unwrapped from Iterator[...]
    text = html.unescape(re.sub(r"<[^>]+>", " ", page))
    assert re.search(r"lambda_tmp\s+function\s+LambdaTmp", text)
    assert re.search(r"lambda_runtime\s+function\s+Callable\[\.\.\., Any\]", text)


def test_yielded_type_unwraps_nested_brackets() -> None:
    yielded = _hook()._yielded
    assert yielded("Iterator[Callable[..., Any]]") == "Callable[..., Any]"
    assert yielded("Generator[dict[str, int], None, None]") == "dict[str, int]"
    assert yielded("LambdaContext") == "LambdaContext"


# --- troubleshooting ------------------------------------------------------------------------


def error_classes() -> dict[str, type[BaseException]]:
    """Every exception class defined in lambdaslim's source (found by reading it, then imported)."""
    found: dict[str, type[BaseException]] = {}
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        rel = path.relative_to(SRC.parent).with_suffix("")
        module_name = ".".join(p for p in rel.parts if p != "__init__")
        for node in tree.body:  # module level: classes inside functions are not raised to users
            if not isinstance(node, ast.ClassDef) or node.name.startswith("_"):
                continue
            if not any(re.search(r"(Error|Exception)$", ast.unparse(b)) for b in node.bases):
                continue
            cls = getattr(importlib.import_module(module_name), node.name)
            assert issubclass(cls, BaseException), cls
            assert node.name not in found, f"two error classes named {node.name}"
            found[node.name] = cls
    return found


def _entries() -> dict[str, str]:
    text = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    parts = re.split(r"^### (\w+)\s*$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def _catch_as(cls: type[BaseException]) -> set[str]:
    """The most derived built-in exceptions the class is a subclass of."""
    found = {b for b in cls.__mro__ if getattr(builtins, b.__name__, None) is b and b is not object}
    return {b.__name__ for b in found if not any(o is not b and issubclass(o, b) for o in found)}


def test_troubleshooting_has_an_entry_for_every_error_class() -> None:
    classes = error_classes()
    assert {"LambdaslimError", "ArchiveError", "StorageBudgetError", "PackError", "S3Error"} <= set(classes)
    entries = _entries()
    assert not set(classes) - set(entries), f"error classes without a troubleshooting entry: {sorted(set(classes) - set(entries))}"
    assert not set(entries) - set(classes), f"entries for classes that do not exist: {sorted(set(entries) - set(classes))}"
    for name, body in entries.items():
        cls = classes[name]
        assert "**Means:**" in body and "**Fix:**" in body, name
        imported = re.search(r"\*\*Import:\*\* `([\w.]+)`", body)
        assert imported, name
        module_name, _, attr = imported.group(1).rpartition(".")
        assert getattr(importlib.import_module(module_name), attr) is cls, f"{name}: {imported.group(1)}"
        catch = re.search(r"\*\*Catch as:\*\* (.*)", body)
        assert catch, name
        said = set(re.findall(r"`(\w+)`", catch.group(1))) - {"errno"} - {n for n in re.findall(r"`errno\.(\w+)`", catch.group(1))}
        said = {s for s in said if not s.isupper()}
        assert said == _catch_as(cls), f"{name}: says {sorted(said)}, is {sorted(_catch_as(cls))}"


def test_catch_as_is_what_the_class_really_is() -> None:
    """The rule the entries are checked with distinguishes classes (it can fail)."""
    from lambdaslim.s3 import S3AccessDeniedError, S3Error
    from lambdaslim import StorageBudgetError

    assert _catch_as(S3AccessDeniedError) == {"PermissionError"}
    assert _catch_as(StorageBudgetError) == {"OSError"}
    assert _catch_as(S3Error) == {"Exception"}


def test_troubleshooting_is_in_the_site(site: Path) -> None:
    page = _page(site, "troubleshooting")
    for name in error_classes():
        assert f'id="{name.lower()}"' in page, name
