"""The `v4s` command line. Each command lives in the module that does the work (`add_cli`);
this file only lists them, so `v4s train` is found in v4s_lite/train.py, `v4s eval` in evaluate.py.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import re
import sys

from .utils import V4SError

# module -> the commands its add_cli adds (listed here so that an import failure can name the commands it costs;
# tests/test_cli.py checks the list against what add_cli registers)
COMMAND_MODULES = {"course": ["course"], "data": ["make-data"], "scans": ["import-scan"], "checkpoints": ["export"],
                   "train": ["train"], "sample": ["sample"], "evaluate": ["eval"], "tables": ["tables"],
                   "full": ["wan-memory", "wan-random", "wan-train"]}
# import names whose pip distribution is called otherwise
DISTRIBUTION = {"yaml": "pyyaml", "PIL": "pillow", "imageio_ffmpeg": "imageio-ffmpeg"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def install_hint(package: str, requirements: list[str] | None = None) -> str:
    """How to get a missing third-party `package`: the v4s-lite extra that lists it, a reinstall when it is a core
    dependency, else a plain pip install. `requirements`: v4s-lite's (default: the installed package's metadata)."""
    dist = DISTRIBUTION.get(package, package)
    if requirements is None:
        try:
            requirements = importlib.metadata.requires("v4s-lite") or []
        except importlib.metadata.PackageNotFoundError:
            requirements = []
    core, extras = False, []
    for req in requirements:
        name = re.match(r"[A-Za-z0-9_.-]+", req)
        if name and _norm(name.group()) == _norm(dist):
            extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", req)
            if extra:
                extras.append(extra.group(1))
            else:
                core = True
    if core:
        return f"{dist} is a dependency of v4s-lite: reinstall it with its dependencies (pip install -e .)"
    if extras:  # the extra named after the package if there is one (tensorboard), else the first listed
        extra = next((e for e in extras if _norm(e) == _norm(dist)), extras[0])
        return f"{dist} comes with an optional extra: pip install -e \".[{extra}]\" (or pip install {dist})"
    return f"Install it: pip install {dist}"


def import_failure(module: str, error: Exception) -> V4SError:
    """The error for a command module that failed to import: the commands it costs, the exception, the fix."""
    commands = ", ".join(f"`v4s {c}`" for c in COMMAND_MODULES.get(module, [])) or f"the commands of {module}"
    missing = getattr(error, "name", None) if isinstance(error, ModuleNotFoundError) else None
    if missing and missing.split(".")[0] != "v4s_lite":  # a third-party package that is not installed
        fix = install_hint(missing.split(".")[0])
    else:  # a bug in the package (or a half-installed copy): the traceback says where
        fix = (f"See the traceback with: python -c 'import v4s_lite.{module}' and fix that import "
               "(or reinstall: pip install -e .)")
    return V4SError(f"{commands} unavailable: importing v4s_lite.{module} failed with {type(error).__name__}: "
                    f"{error}. {fix}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="v4s", description="Video4Spatial, lite: the course's command line.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        # A module that fails to import is an error, not a command that silently goes missing from `v4s --help`.
        try:
            module = importlib.import_module(f"v4s_lite.{name}")
        except Exception as e:
            raise import_failure(name, e) from e
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
    finally:
        _end_process_group()


def _end_process_group() -> None:
    """Under `accelerate launch` / torchrun, close the process group before the interpreter exits: gloo's worker
    threads outliving it abort the process at exit ("terminate called without an active exception", SIGABRT:
    pytorch/pytorch#179291), and NCCL warns. accelerate closes it only with trackers (end_training)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
