"""MkDocs hook: the reference pages are generated from the code at build time, so they cannot drift.

A page holds a marker and the build replaces it:

- ``<!-- lambdaslim:api MODULE -->``: one mkdocstrings block per name of ``MODULE.__all__``
  (read at run time, so a name loaded lazily by ``__getattr__`` is listed too);
- ``<!-- lambdaslim:fixtures -->``: the pytest fixtures of ``lambdaslim.testing.plugin``, a
  table (scope, what the test receives) then one mkdocstrings block each;
- ``<!-- lambdaslim:cli -->``: every command and option of ``lambdaslim``, rendered from
  ``lambdaslim._cli.build_parser()``.

tests/test_docs.py imports this file to check the pages against the code.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import re
import tempfile
from typing import Any

API_MODULES = ("lambdaslim", "lambdaslim.bootstrap", "lambdaslim.budget", "lambdaslim.s3")
FIXTURE_MODULE = "lambdaslim.testing.plugin"
_MARKER = re.compile(r"<!--\s*lambdaslim:(api|fixtures|cli)\s*([\w.]*)\s*-->")
# Sphinx roles left in docstrings (``:func:`x` ``): shown as plain code in the HTML.
_ROLE = re.compile(r":(?:func|class|mod|meth|attr|exc|data|obj):(<code>)~?")


def _import(name: str) -> Any:
    if name == "lambdaslim.bootstrap" and "LAMBDASLIM_LAYER_ROOTS" not in os.environ:
        # Importing the bootstrap installs its import hook: let it look at an empty folder,
        # never at this machine's /opt.
        os.environ["LAMBDASLIM_LAYER_ROOTS"] = tempfile.mkdtemp(prefix="lambdaslim-docs-")
    return importlib.import_module(name)


def public_names(module_name: str) -> list[str]:
    """``__all__`` of a public module, as the interpreter sees it."""
    return list(_import(module_name).__all__)


def _block(identifier: str, heading_level: int = 3, **options: Any) -> str:
    lines = [f"::: {identifier}", "    options:", f"      heading_level: {heading_level}"]
    lines += [f"      {key}: {str(value).lower() if isinstance(value, bool) else value}"
              for key, value in options.items()]
    return "\n".join(lines) + "\n"


def api_markdown(module_name: str) -> str:
    """One mkdocstrings block per public name of ``module_name``, classes first."""
    module = _import(module_name)
    names = public_names(module_name)

    def order(name: str) -> tuple[int, str]:
        obj = getattr(module, name)
        return (0 if inspect.isclass(obj) and not issubclass(obj, BaseException) else
                1 if inspect.isroutine(obj) else 2 if inspect.isclass(obj) else 3, name.lower())

    doc = (inspect.getdoc(module) or "").split("\n\n")[0]
    parts = [doc + "\n"] if doc else []
    parts += [_block(f"{module_name}.{name}") for name in sorted(names, key=order)]
    return "\n".join(parts)


def fixtures() -> dict[str, Any]:
    """Public fixtures of the plugin: name -> the decorated object."""
    plugin = _import(FIXTURE_MODULE)
    found = {}
    for name, obj in vars(plugin).items():
        marker = getattr(obj, "_fixture_function_marker", None) or getattr(obj, "_pytestfixturefunction", None)
        if marker is not None and not name.startswith("_"):
            found[getattr(marker, "name", None) or name] = obj
    return dict(sorted(found.items()))


def _fixture_facts(obj: Any) -> tuple[str, str]:
    """(scope, what the test receives) of a fixture, from its marker and return annotation."""
    marker = getattr(obj, "_fixture_function_marker", None) or getattr(obj, "_pytestfixturefunction")
    func = obj._get_wrapped_function() if hasattr(obj, "_get_wrapped_function") else obj
    returns = inspect.signature(func).return_annotation
    text = returns if isinstance(returns, str) else getattr(returns, "__name__", str(returns))
    return str(marker.scope), _yielded(text)


def _yielded(annotation: str) -> str:
    """``Iterator[X]`` / ``Generator[X, ...]`` -> ``X``; anything else as is."""
    for prefix in ("Iterator[", "Generator["):
        if annotation.startswith(prefix) and annotation.endswith("]"):
            inner, depth = annotation[len(prefix):-1], 0
            for i, ch in enumerate(inner):
                depth += ch == "["
                depth -= ch == "]"
                if ch == "," and depth == 0:
                    return inner[:i]
            return inner
    return annotation


def fixtures_markdown() -> str:
    rows = ["| fixture | scope | the test receives |", "|---|---|---|"]
    found = fixtures()
    for name, obj in found.items():
        scope, receives = _fixture_facts(obj)
        rows.append(f"| [`{name}`](#{FIXTURE_MODULE}.{name}) | {scope} | `{receives}` |")
    parts = ["\n".join(rows) + "\n"]
    parts += [_block(f"{FIXTURE_MODULE}.{name}", show_root_full_path=False) for name in found]
    return "\n".join(parts)


# --- the command line --------------------------------------------------------------------


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _usage(parser: argparse.ArgumentParser) -> str:
    formatter = argparse.HelpFormatter(parser.prog, width=88)  # not the terminal's width
    if hasattr(formatter, "_set_color"):  # Python >= 3.14
        formatter._set_color(False)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return formatter.format_help().strip()


def _help(action: argparse.Action, parser: argparse.ArgumentParser) -> str:
    text = action.help or ""
    if "%(" in text:
        params = dict(vars(action), prog=parser.prog)
        text = text % params
    return text


def _option_row(action: argparse.Action, parser: argparse.ArgumentParser) -> str:
    if action.option_strings:
        name = ", ".join(f"`{s}`" for s in action.option_strings)
    else:
        name = f"`{action.metavar or action.dest}`"
    if action.nargs == 0:
        value = ""
    elif action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        value = " \\| ".join(f"`{c}`" for c in action.choices)
    elif not action.option_strings:
        value = {"*": "zero or more", "+": "one or more", "?": "optional"}.get(str(action.nargs), "")
    else:
        metavar = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
        value = f"`{metavar}`"
        if action.nargs in ("*", "+"):
            value += " ..."
    notes = []
    if action.required and action.option_strings:
        notes.append("required")
    if isinstance(action, argparse._AppendAction) and "repeatable" not in (action.help or ""):
        notes.append("repeatable")
    default = action.default
    if (default not in (None, False, [], argparse.SUPPRESS) and action.nargs != 0
            and "default" not in (action.help or "")):
        notes.append(f"default `{default}`")
    description = _help(action, parser)
    if notes:
        description = f"{description} ({', '.join(notes)})" if description else ", ".join(notes)
    return f"| {name} | {value} | {_cell(description)} |"


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            out += [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return out


def _parser_markdown(parser: argparse.ArgumentParser, level: int) -> list[str]:
    lines = [f"```\n{_usage(parser)}\n```\n"]
    if parser.description:
        lines.insert(0, parser.description + "\n")
    for group in parser._action_groups:
        actions = [a for a in group._group_actions
                   if a.help != argparse.SUPPRESS and not isinstance(a, argparse._SubParsersAction)]
        if not actions:
            continue
        title = group.title or "options"
        lines.append(f"{'#' * (level + 1)} {title[0].upper()}{title[1:]}\n")
        lines.append("| argument | value | description |\n|---|---|---|")
        lines += [_option_row(a, parser) for a in actions]
        lines.append("")
    return lines


def cli_markdown(parser: argparse.ArgumentParser | None = None) -> str:
    """Every command and option of ``lambdaslim`` as Markdown, from its argparse parser."""
    if parser is None:
        from lambdaslim._cli import build_parser

        parser = build_parser()
    lines = _parser_markdown(parser, 2)
    commands = _subcommands(parser)
    lines.append("| command | what it does |\n|---|---|")
    lines += [f"| [`{parser.prog} {name}`](#{parser.prog}-{name}) | {_cell(text)} |" for name, text, _ in commands]
    lines.append("")
    for name, text, sub in commands:
        lines.append(f"## `{parser.prog} {name}` {{#{parser.prog}-{name}}}\n")
        if text:
            lines.append(f"{text[0].upper()}{text[1:]}.\n")
        lines += _parser_markdown(sub, 2)
    return "\n".join(lines)


# --- MkDocs events -----------------------------------------------------------------------


def render_markers(markdown: str) -> str:
    def replace(match: re.Match[str]) -> str:
        kind, arg = match.group(1), match.group(2)
        if kind == "api":
            return api_markdown(arg)
        if kind == "fixtures":
            return fixtures_markdown()
        return cli_markdown()

    return _MARKER.sub(replace, markdown)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return render_markers(markdown)


def on_page_content(html: str, **kwargs: Any) -> str:
    return _ROLE.sub(r"\1", html)
