"""The build options of ``lambdaslim pack`` and the ``lambdaslim verify`` command.

``lambdaslim pack SRC_DIR -o layer.zip`` alone packs a folder as it is (see ``_cli``). With
``-r``, requirement names, ``--from DIR`` or any build option it runs the build pipeline of
``_build``: resolve for the target, prune, strip, trace, compile, pack, check the limits.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from .._size import parse_size

_BUILD_DESTS = ("requirement_files", "from_dir", "python", "arch", "keep", "drop", "strip",
                "stub", "keep_gpu", "ephemeral_storage", "keep_imported", "split", "max_layer_size", "no_prune", "no_bytecode",
                "pip_arg")


def _size_arg(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_pack_options(p: argparse.ArgumentParser) -> None:
    """Add the build options to the ``pack`` subcommand's parser."""
    g = p.add_argument_group("build for Lambda (resolve, prune, strip, trace, bytecode, limits)")
    g.add_argument("-r", "--requirement", dest="requirement_files", action="append", default=[],
                   metavar="FILE", help="install from this requirements file (repeatable)")
    g.add_argument("--from", dest="from_dir", metavar="DIR",
                   help="build from an installed folder (copied, never modified) instead of requirements")
    g.add_argument("--python", help="target Lambda runtime's Python, e.g. 3.12 (default: this interpreter's)")
    g.add_argument("--arch", choices=["x86_64", "arm64"], help="target architecture (default x86_64)")
    g.add_argument("--keep", action="append", default=[], metavar="PATTERN",
                   help="never remove paths matching PATTERN (repeatable; wins over pruning and --drop)")
    g.add_argument("--drop", action="append", default=[], metavar="PATTERN",
                   help="also remove paths matching PATTERN (repeatable)")
    g.add_argument("--no-prune", action="store_true", help="skip the default safe pruning steps")
    g.add_argument("--strip", action="store_true",
                   help="strip shared libraries, keeping the original of any that would not load")
    g.add_argument("--stub", action="append", default=[], metavar="DIST",
                   help="replace distribution DIST by an empty importable stub (repeatable)")
    g.add_argument("--keep-gpu", dest="keep_gpu", action="append", nargs="?", const="*", default=[],
                   metavar="DIST",
                   help="keep CUDA/GPU-only distributions (nvidia-*, triton...; see docs/build.md), "
                        "which are left out by default because Lambda has no GPU; with DIST keep "
                        "only that one (repeatable)")
    g.add_argument("--keep-imported", metavar="CMD",
                   help="run CMD on the tree, keep only files it touched, re-run it to confirm")
    g.add_argument("--no-bytecode", action="store_true", help="ship sources only")
    g.add_argument("--split", type=int, default=1, metavar="N", help="write N layer zips")
    g.add_argument("--max-layer-size", type=_size_arg, default=None, metavar="SIZE",
                   help="unzipped size allowed per layer (default 250 MB, AWS's limit)")
    g.add_argument("--ephemeral-storage", type=_size_arg, default=None, metavar="SIZE",
                   help="the function's /tmp (EphemeralStorage, default 512MB): a full extraction "
                        "over it is reported with the way under")
    g.add_argument("--pip-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for pip (repeatable), e.g. --pip-arg=--index-url=URL")


def _is_path(text: str) -> bool:
    """A positional that names a local folder rather than a requirement (``numpy>=2``, a URL,
    a ``.whl`` file)."""
    if os.path.isdir(text):
        return True
    if "://" in text or text.endswith((".whl", ".tar.gz", ".zip")):
        return False
    return "/" in text or os.sep in text or text.startswith(".") or os.path.exists(text)


def build_requested(args: argparse.Namespace) -> bool:
    """True when ``pack`` must run the build pipeline rather than pack a folder as is."""
    srcs: list[str] = args.src
    if args.requirement_files or args.from_dir or args.python or args.arch:
        return True
    if len(srcs) != 1 or not _is_path(srcs[0]):
        return bool(srcs)  # requirement names
    return bool(args.keep or args.drop or args.strip or args.stub or args.keep_imported
                or args.keep_gpu or args.ephemeral_storage is not None
                or args.split != 1 or args.max_layer_size is not None)


def cmd_pack(args: argparse.Namespace, plain: Callable[[argparse.Namespace], int]) -> int:
    """``pack``: the build pipeline, or ``plain`` (pack a folder as is)."""
    from ._errors import PackError

    srcs: list[str] = list(args.src)
    if not build_requested(args):
        if not srcs:
            raise PackError("nothing to pack: give SRC_DIR, -r requirements.txt or requirement names")
        args.src = srcs[0]
        return plain(args)
    from . import _limits
    from ._build import BuildOptions, build, stderr_log

    from_dir = args.from_dir
    requirements = srcs
    if from_dir is None and len(srcs) == 1 and _is_path(srcs[0]):
        from_dir, requirements = srcs[0], []
    opts = BuildOptions(
        output=args.output, requirements=requirements, requirement_files=args.requirement_files,
        from_dir=from_dir, python=args.python, arch=args.arch, prune=not args.no_prune,
        keep=args.keep, drop=args.drop, strip=args.strip, stubs=args.stub, keep_gpu=args.keep_gpu,
        ephemeral_storage=args.ephemeral_storage or _limits.DEFAULT_TMP,
        keep_imported=args.keep_imported, bytecode=not args.no_bytecode, split=args.split,
        max_layer_size=args.max_layer_size or _limits.UNZIPPED_LAYERS, level=args.level,
        part_bytes=args.part_size, pip_args=args.pip_arg, quiet=args.quiet)
    progress = not args.quiet and sys.stderr.isatty()  # like pack's progress bar
    result = build(opts, log=stderr_log if progress else None)
    if not args.quiet or result.exit_code:
        print(result.render(), file=sys.stdout if not result.exit_code else sys.stderr)
    return result.exit_code


def cmd_verify(args: argparse.Namespace) -> int:
    from ._verify import verify

    result = verify(args.layers, tmp_limit=args.tmp_limit or None, names=args.imports or None,
                    run=args.run, interpreter=args.interpreter, entry_points=args.entry_points,
                    python_mode=args.python_mode)
    print(result.render())
    return 0 if result.ok else 1


def register_verify(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("verify", help="import a layer's packages in a fresh interpreter, under a /tmp budget")
    p.add_argument("layers", nargs="+", metavar="LAYER_ZIP", help="layer zips (all of a function's)")
    p.add_argument("--tmp-limit", type=_size_arg, default=parse_size("512MB"), metavar="SIZE",
                   help="the /tmp budget (default 512MB; 0 for none)")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="NAME",
                   help="import NAME (repeatable; default: every top-level name in the layer)")
    p.add_argument("--run", metavar="CODE", help="Python code to run after the imports (e.g. a fit/predict)")
    p.add_argument("--entry-points", action=argparse.BooleanOptionalAction, default=None,
                   help="load every entry point of every distribution after the imports, naming "
                        "the pruning step that removed what a failing one needs (default: on "
                        "unless --import narrows the check)")
    p.add_argument("--interpreter", metavar="PATH",
                   help="the Python to use (default: one matching the layer's version)")
    p.add_argument("--python-mode", choices=("memory", "disk"), default="memory",
                   help="LAMBDASLIM_PYTHON for the run: .py/.pyc from memory (default) or on disk")
    p.set_defaults(func=cmd_verify)
