"""`v4s course`: run the notebooks in order through papermill, as an instructor does before class.

Executed copies go to a build folder (never over the sources), each notebook gets its `parameters`
cell overridden (`quick=False` with `--full`), and the run stops at the first failing cell and says
which notebook and which cell failed.
"""
from __future__ import annotations

import re
import sys
import time
from pathlib import Path

from .utils import V4SError

REPO_ROOT = Path(__file__).resolve().parents[1]


def find_notebooks(folder: Path, only: list[str] | None = None) -> list[Path]:
    """The course's notebooks `NN_name.ipynb`, in order; `only` keeps those whose number is listed."""
    if not folder.is_dir():
        raise V4SError(f"no notebooks folder at {folder}: run `v4s course` from a checkout of the course "
                       "or pass --notebooks DIR")
    notebooks = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
    if only:
        wanted = {f"{int(n):02d}" for n in only}
        notebooks = [p for p in notebooks if p.name[:2] in wanted]
        missing = wanted - {p.name[:2] for p in notebooks}
        if missing:
            raise V4SError(f"no notebook numbered {', '.join(sorted(missing))} in {folder}; "
                           f"there are: {', '.join(p.name[:2] for p in sorted(folder.glob('[0-9][0-9]_*.ipynb')))}")
    if not notebooks:
        raise V4SError(f"no notebooks named NN_*.ipynb in {folder}")
    return notebooks


def run_course(notebook_dir: Path, out: Path, full: bool = False, only=None, device: str = "auto",
               progress: bool = True) -> list[tuple[str, float]]:
    """Execute each notebook with papermill; return [(name, seconds)]. Raises V4SError at the first failure."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    notebooks = find_notebooks(notebook_dir, only)
    out.mkdir(parents=True, exist_ok=True)
    params = {"quick": not full, "device": device}
    times = []
    for i, nb in enumerate(notebooks, 1):
        print(f"[{i}/{len(notebooks)}] {nb.name} ({'full' if full else 'quick'} mode)", flush=True)
        t0 = time.time()
        try:
            pm.execute_notebook(str(nb), str(out / nb.name), parameters=params, cwd=str(nb.parent),
                                progress_bar=progress, kernel_name="python3")
        except PapermillExecutionError as e:
            raise V4SError(f"{nb.name} failed in {_describe_cell(nb, out / nb.name, e.cell_index)}: "
                           f"{e.ename}: {e.evalue}\nThe executed copy with the traceback is {out / nb.name}.") from None
        times.append((nb.name, time.time() - t0))
    return times


def _describe_cell(source_nb: Path, executed_nb: Path, index: int) -> str:
    """Name the failing cell as a student finds it in the source notebook (papermill inserts a cell of its own)."""
    import nbformat

    if not executed_nb.exists():
        return f"cell {index}"
    # papermill puts an error banner cell on top of the saved copy after the failure: skip it
    cells = [c for c in nbformat.read(executed_nb, as_version=4).cells
             if "papermill-error-cell-tag" not in c.metadata.get("tags", [])]
    cell = cells[index]
    for i, c in enumerate(nbformat.read(source_nb, as_version=4).cells, 1):
        if c.source == cell.source:
            first = c.source.strip().splitlines()[0] if c.source.strip() else ""
            return f"cell {i} (`{first[:60]}`)"
    return f"cell {index}"


def format_times(times: list[tuple[str, float]]) -> str:
    width = max(len(n) for n, _ in times)
    lines = [f"| {'notebook':<{width}} | seconds |", f"|{'-' * (width + 2)}|---------|"]
    lines += [f"| {n:<{width}} | {s:7.1f} |" for n, s in times]
    lines.append(f"| {'total':<{width}} | {sum(s for _, s in times):7.1f} |")
    return "\n".join(lines)


def _cli(args) -> int:
    only = [x for part in (args.only or []) for x in re.split(r"[,\s]+", part) if x]
    times = run_course(Path(args.notebooks), Path(args.out), full=args.full, only=only, device=args.device,
                       progress=not args.no_progress)
    print(format_times(times))
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("course", help="run the notebooks in order through papermill (quick mode by default)",
                       description=__doc__)
    p.add_argument("--full", action="store_true", help="quick=False: the real sizes (GPU recommended)")
    p.add_argument("--only", nargs="+", metavar="NN", help="run only these notebook numbers, e.g. --only 03 05")
    p.add_argument("--out", default="build/notebooks", help="folder for the executed copies (default build/notebooks)")
    p.add_argument("--notebooks", default=str(REPO_ROOT / "notebooks"), help="folder of the course's notebooks")
    p.add_argument("--device", default="auto", help="passed to each notebook's parameters (auto, cpu, cuda)")
    p.add_argument("--no-progress", action="store_true", help="no per-cell progress bar")
    p.set_defaults(func=_cli)


if __name__ == "__main__":
    from .cli import main

    sys.exit(main(["course", *sys.argv[1:]]))
