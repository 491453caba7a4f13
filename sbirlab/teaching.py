"""Student copies of the notebooks: every solution removed, everything else unchanged.

Instructors edit the solved notebooks in ``notebooks/``; an exercise's solution sits between two
marker lines (nbgrader's convention, so the notebooks also work with nbgrader)::

    ### BEGIN SOLUTION
    formula = 2 * enc.width * (2 * enc.num_layers + 2)
    ### END SOLUTION

:func:`write_student_copies` (``sbirlab student``, ``make student``) writes ``notebooks/student/``
with each solution replaced by a placeholder at the marker's indentation::

    # YOUR CODE HERE
    raise NotImplementedError("Exercise: write your solution here")

Markdown cells may hide a worked answer the same way (the placeholder then reads
``*Your answer here.*``). The copies are deterministic (same input, same bytes), so
:func:`stale_student_copies` lets a test check that the committed copies are current. Outputs are
cleared in the copies; the ``parameters`` cell and cell ids are kept so papermill still runs them.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from .io import atomic_write_text

__all__ = ["BEGIN", "END", "SolutionMarkerError", "strip_solutions", "student_notebook",
           "write_student_copies", "stale_student_copies"]

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
CODE_PLACEHOLDER = ("# YOUR CODE HERE", 'raise NotImplementedError("Exercise: write your solution here")')
MARKDOWN_PLACEHOLDER = "*Your answer here.*"

REPO = Path(__file__).resolve().parents[1]


class SolutionMarkerError(ValueError):
    """Unbalanced or nested solution markers: the message names the notebook, cell and line."""


def strip_solutions(source: str, cell_type: str = "code", where: str = "cell") -> tuple[str, int]:
    """Replace every ``BEGIN``/``END`` block of ``source`` by the placeholder; returns (text, n_blocks).

    Raises:
        SolutionMarkerError: a ``BEGIN`` without ``END``, an ``END`` without ``BEGIN``, or nesting.
    """
    out: list[str] = []
    inside_since = None
    n = 0
    lines = source.splitlines(keepends=True)
    for i, line in enumerate(lines, 1):
        tag = line.strip()
        if tag == BEGIN:
            if inside_since is not None:
                raise SolutionMarkerError(f"{where}: line {i}: {BEGIN!r} inside the solution opened at line {inside_since}")
            inside_since = i
            indent = re.match(r"\s*", line).group(0)
            if cell_type == "code":
                out.extend(f"{indent}{p}\n" for p in CODE_PLACEHOLDER)
            else:
                out.append(f"{indent}{MARKDOWN_PLACEHOLDER}\n")
            n += 1
        elif tag == END:
            if inside_since is None:
                raise SolutionMarkerError(f"{where}: line {i}: {END!r} without a {BEGIN!r} before it")
            inside_since = None
        elif inside_since is None:
            out.append(line)
    if inside_since is not None:
        raise SolutionMarkerError(f"{where}: the solution opened at line {inside_since} has no {END!r}")
    text = "".join(out)
    if not source.endswith("\n") and text.endswith("\n"):
        text = text[:-1]
    return text, n


def student_notebook(nb: dict, name: str = "notebook") -> tuple[dict, int]:
    """A student copy of notebook JSON ``nb`` (not modified); returns (copy, number of solutions removed)."""
    out = json.loads(json.dumps(nb))
    total = 0
    for k, cell in enumerate(out.get("cells", [])):
        src = cell.get("source", "")
        text = "".join(src) if isinstance(src, list) else src
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        if BEGIN not in text and END not in text:
            continue
        new, n = strip_solutions(text, cell.get("cell_type", "code"), where=f"{name}, cell {k}")
        total += n
        cell["source"] = new.splitlines(keepends=True)
    meta = out.setdefault("metadata", {})
    meta["sbirlab"] = {"student_copy": True, "solutions_removed": total}
    return out, total


def _dump(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"



def _expected(src_dir: Path) -> dict[str, str]:
    """Student copy text of every numbered notebook in ``src_dir``, by file name."""
    exp = {}
    for path in sorted(src_dir.glob("[0-9][0-9]_*.ipynb")):
        try:
            nb = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not a notebook (invalid JSON: {e})") from e
        copy, _ = student_notebook(nb, path.name)
        exp[path.name] = _dump(copy)
    return exp


def write_student_copies(src_dir: str | Path | None = None, out_dir: str | Path | None = None) -> list[Path]:
    """Write the student copy of every ``NN_*.ipynb`` of ``src_dir`` into ``out_dir``; remove orphans.

    Defaults: ``notebooks/`` and ``notebooks/student/``. Returns the paths written.
    """
    src = Path(src_dir) if src_dir else REPO / "notebooks"
    out = Path(out_dir) if out_dir else src / "student"
    exp = _expected(src)
    written = []
    for name, text in exp.items():
        p = out / name
        if not p.exists() or p.read_text(encoding="utf-8") != text:
            atomic_write_text(p, text)
        written.append(p)
    for p in out.glob("*.ipynb"):  # a notebook deleted or renamed upstream
        if p.name not in exp:
            p.unlink()
    return written


def stale_student_copies(src_dir: str | Path | None = None, out_dir: str | Path | None = None) -> list[str]:
    """Names of student copies that are missing, different from a fresh copy, or orphaned."""
    src = Path(src_dir) if src_dir else REPO / "notebooks"
    out = Path(out_dir) if out_dir else src / "student"
    exp = _expected(src)
    bad = [n for n, t in exp.items() if not (out / n).exists() or (out / n).read_text(encoding="utf-8") != t]
    bad += [p.name for p in out.glob("*.ipynb") if p.name not in exp]
    return sorted(bad)
