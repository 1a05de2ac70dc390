"""The `v4s` command line. Each command lives in the module that does the work (`add_cli`);
this file only lists them, so `v4s train` is found in v4s_lite/train.py, `v4s eval` in evaluate.py.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .utils import V4SError

# module -> the commands it adds
COMMAND_MODULES = ["course", "data", "scans", "checkpoints", "train", "sample", "evaluate", "tables", "full"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="v4s", description="Video4Spatial, lite: the course's command line.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        # A module that fails to import is an error, not a command that silently goes missing from `v4s --help`.
        try:
            module = importlib.import_module(f"v4s_lite.{name}")
        except Exception as e:
            raise V4SError(f"the commands of v4s_lite.{name} are unavailable: importing it failed with "
                           f"{type(e).__name__}: {e}. Fix that import (or reinstall: pip install -e .)") from e
        if hasattr(module, "add_cli"):  # tests/test_cli.py checks that every command is there
            module.add_cli(sub)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = build_parser()
    except V4SError as e:
        print(f"v4s: error: {e}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    args.argv = argv  # results files record the command that made them
    try:
        return int(args.func(args) or 0)
    except V4SError as e:
        print(f"v4s {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
