"""The notebooks teach; the package computes. Every code cell holds a few statements: the setup cell
(imports, the profile, loading) at most ten, an exercise's worked solution at most nine, any other
at most seven (imports not counted); no cell outside an exercise's
solution defines functions or draws with matplotlib itself (the figure builders of ``locdiff.figures``
do); every figure a notebook draws is saved by it under figures/."""
import ast
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
DRAWING = re.compile(r"\bplt\.|\bax\d*\.|\baxes\[|\.subplots\(|\.set_(x|y)label\(|\.errorbar\(|\.scatter\(|\.suptitle\(")


def _code_cells(path):
    for i, cell in enumerate(json.loads(path.read_text())["cells"]):
        if cell["cell_type"] == "code":
            src = "".join(cell["source"])
            solution = "hide-cell" in cell.get("metadata", {}).get("tags", [])
            yield i, src, solution


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_cells_hold_a_few_statements_and_draw_nothing_themselves(path):
    seen_setup = False
    for i, src, solution in _code_cells(path):
        tree = ast.parse("\n".join(line for line in src.splitlines() if not line.startswith(("%", "!"))))
        body = [s for s in tree.body if not isinstance(s, (ast.Import, ast.ImportFrom))]
        setup = not seen_setup and "profiles.get(" in src
        seen_setup = seen_setup or setup
        limit = 10 if setup else 7 if not solution else 9
        assert len(body) <= limit, f"{path.name} cell {i}: {len(body)} statements (at most {limit}): move logic into locdiff"
        if not solution:
            assert not any(isinstance(s, (ast.FunctionDef, ast.ClassDef)) for s in ast.walk(tree)), \
                f"{path.name} cell {i} defines a function or class: it belongs in the package"
            drawing = [line for line in src.splitlines() if DRAWING.search(line)]
            assert not drawing, f"{path.name} cell {i} draws itself ({drawing[0]!r}): use a locdiff.figures builder"
    assert seen_setup, f"{path.name} has no setup cell calling profiles.get"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_built_figure_is_saved(path):
    for i, src, _ in _code_cells(path):
        if re.search(r"\bfigures\.\w+\(", src) and "figures.map_axes" not in src:
            assert "plots.savefig(" in src, f"{path.name} cell {i} builds a figure and does not save it"
