"""The ``lambdaslim`` command: ``pack``, ``inspect`` (and the subcommands other modules add).

Every expected failure prints one line on stderr and exits 2; nothing half-written remains.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from ._errors import LambdaslimError
from ._size import format_size, parse_size
from ._version import __version__

EXIT_USAGE = 2

# Subcommands contributed by other modules: each registers itself on the subparsers.
_EXTRA: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = []


def _register_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ._demo import register

    register(sub)


_EXTRA.append(_register_demo)


def _size_arg(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _cmd_pack(args: argparse.Namespace) -> int:
    from .build._pack import pack_tree

    result = pack_tree(args.src, args.output, level=args.level, part_bytes=args.part_size, quiet=args.quiet,
                       runtime_dir=getattr(args, "runtime_dir", None))
    if not args.quiet:
        from .build._inspect import render, report

        print(render(report(result.output)))
        print(f"\nwrote {result.output} ({format_size(result.layer_zip_bytes)}) in {result.seconds:.1f} s")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from .build._inspect import render, report

    data = report(args.layer)
    if args.json:
        json.dump(data, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        print(render(data))
    return 1 if data["broken_layers"] else 0


def build_parser() -> argparse.ArgumentParser:
    from .build._pack import DEFAULT_LEVEL, DEFAULT_PART_BYTES

    parser = argparse.ArgumentParser(
        prog="lambdaslim", description="Pack big Python dependencies into AWS Lambda layers.")
    parser.add_argument("--version", action="version", version=f"lambdaslim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("pack", help="pack a site-packages folder into a Lambda layer zip")
    p.add_argument("src", metavar="SRC_DIR", nargs="*",
                   help="a site-packages-like folder (pip install --target), or requirement names")
    p.add_argument("-o", "--output", required=True, help="the layer zip to write")
    p.add_argument("--level", type=int, default=DEFAULT_LEVEL, help=f"zstd level 1-22 (default {DEFAULT_LEVEL})")
    p.add_argument("--part-size", type=_size_arg, default=DEFAULT_PART_BYTES,
                   help="split units into independently compressed parts of about this size (default 32MiB)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress and no report")
    p.add_argument("--runtime-dir", metavar="DIR",
                   help="zstandard and filelock installed for the target (pip install --platform ... "
                        "--target DIR), for a layer built for another Python or architecture")
    from .build import _cli as build_cli  # the build options (-r, --python, --arch, --strip...) and verify

    build_cli.add_pack_options(p)
    p.set_defaults(func=lambda a: build_cli.cmd_pack(a, _cmd_pack))

    p = sub.add_parser("inspect", help="show what a packed layer holds, against Lambda's limits")
    p.add_argument("layer", metavar="LAYER_ZIP")
    p.add_argument("--json", action="store_true", help="print a stable JSON object")
    p.set_defaults(func=_cmd_inspect)

    build_cli.register_verify(sub)
    for register in _EXTRA:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except LambdaslimError as exc:
        print(f"lambdaslim {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return 0
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"lambdaslim {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"lambdaslim {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
