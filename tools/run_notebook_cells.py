"""Execute a notebook's code cells in one Python process and save the executed copy, for machines without Jupyter.

    python tools/run_notebook_cells.py notebooks/10_full_wan22.ipynb OUT.ipynb -p quick False -p train_steps 20

The GPU machine the course is tested on has no Jupyter kernel (no ipykernel, nbclient or papermill); everywhere else
use papermill, which this mimics: the parameters are injected as a cell after the one tagged "parameters", every code
cell runs in order in one namespace, and its printed text, matplotlib figures (PNG) and any error are written back as
the cell's outputs (nbformat 4 JSON, read and written with the json module). Execution stops at the first error.
"""
from __future__ import annotations

import argparse
import ast
import base64
import contextlib
import io
import json
import time
import traceback


def _figures_as_outputs(outputs: list) -> None:
    import matplotlib.pyplot as plt

    for num in plt.get_fignums():
        buf = io.BytesIO()
        plt.figure(num).savefig(buf, format="png", bbox_inches="tight")
        outputs.append({"output_type": "display_data", "metadata": {},
                        "data": {"image/png": base64.b64encode(buf.getvalue()).decode(), "text/plain": ["<Figure>"]}})
    plt.close("all")


def run(src, dst, params: dict) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.show = lambda *a, **k: None  # figures are collected after each cell
    nb = json.loads(open(src).read())
    cells = nb["cells"]
    at = next((i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if params and at is None:
        raise SystemExit(f"{src} has no cell tagged 'parameters' to override")
    if params:
        code = "# Parameters (injected)\n" + "".join(f"{k} = {v!r}\n" for k, v in params.items())
        cells.insert(at + 1, {"cell_type": "code", "execution_count": None, "id": "injected-parameters",
                              "metadata": {"tags": ["injected-parameters"]}, "outputs": [], "source": code})
    namespace, count, failed = {"__name__": "__main__"}, 0, False
    open(dst, "w").write(json.dumps(nb, indent=1))
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        if failed:
            cell["outputs"], cell["execution_count"] = [], None
            continue
        count += 1
        out, err, outputs = io.StringIO(), io.StringIO(), []
        t0 = time.perf_counter()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                exec(compile("".join(cell["source"]), f"<cell {count}>", "exec"), namespace)
        except BaseException as e:  # noqa: BLE001 - recorded in the notebook, as papermill does
            failed = True
            outputs.append({"output_type": "error", "ename": type(e).__name__, "evalue": str(e)[:2000],
                            "traceback": traceback.format_exc().splitlines()[-30:]})
        for name, stream in (("stdout", out), ("stderr", err)):
            if stream.getvalue():
                outputs.insert(0 if name == "stdout" else len(outputs), {"output_type": "stream", "name": name,
                                                                        "text": stream.getvalue()})
        _figures_as_outputs(outputs)
        cell["outputs"], cell["execution_count"] = outputs, count
        cell.setdefault("metadata", {})["execution_seconds"] = round(time.perf_counter() - t0, 2)
        print(f"cell {count}: {cell['metadata']['execution_seconds']} s{' FAILED' if failed else ''}", flush=True)
        open(dst, "w").write(json.dumps(nb, indent=1))  # after every cell: a run cut short keeps what it did
    return 1 if failed else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="a parameter; the value is read as a Python literal when it is one (as papermill's -p)")
    a = p.parse_args(argv)
    params = {}
    for k, v in a.p:
        try:
            params[k] = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            params[k] = v
    return run(a.src, a.dst, params)


if __name__ == "__main__":
    raise SystemExit(main())
