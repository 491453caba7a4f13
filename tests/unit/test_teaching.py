"""Student copies: solutions removed, everything else kept, committed copies current."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from sbirlab.cli import main
from sbirlab.teaching import (BEGIN, END, SolutionMarkerError, stale_student_copies, strip_solutions,
                              student_notebook, write_student_copies)

REPO = Path(__file__).resolve().parents[2]


def _nb(*cells):
    return {"cells": [{"cell_type": t, "metadata": {}, "source": s, **({"outputs": [{"x": 1}], "execution_count": 3}
                                                                       if t == "code" else {})}
                      for t, s in cells], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def test_strip_keeps_code_around_the_solution_and_its_indentation():
    src = f"def f(x):\n    {BEGIN}\n    y = 2 * x\n    return y\n    {END}\n\nassert f(2) == 4"
    out, n = strip_solutions(src)
    assert n == 1
    assert out == ("def f(x):\n    # YOUR CODE HERE\n"
                   '    raise NotImplementedError("Exercise: write your solution here")\n\nassert f(2) == 4')
    assert "2 * x" not in out


def test_strip_handles_several_blocks_and_markdown_answers():
    src = f"a = 1\n{BEGIN}\nb = 2\n{END}\nc = 3\n{BEGIN}\nd = 4\n{END}\n"
    out, n = strip_solutions(src)
    assert n == 2 and out.count("YOUR CODE HERE") == 2 and "b = 2" not in out and "d = 4" not in out
    assert out.startswith("a = 1\n") and "c = 3\n" in out and out.endswith("\n")
    md, k = strip_solutions(f"**Answer.**\n{BEGIN}\nBecause the prompts...\n{END}", "markdown")
    assert k == 1 and md == "**Answer.**\n*Your answer here.*"


@pytest.mark.parametrize("src,msg", [
    (f"{BEGIN}\nx = 1\n", "has no"),
    (f"x = 1\n{END}\n", "without a"),
    (f"{BEGIN}\n{BEGIN}\n{END}\n", "inside the solution opened at line 1"),
])
def test_unbalanced_markers_are_errors_naming_cell_and_line(src, msg):
    with pytest.raises(SolutionMarkerError, match=msg) as e:
        strip_solutions(src, where="04_x.ipynb, cell 7")
    assert "04_x.ipynb, cell 7" in str(e.value)


def test_student_notebook_clears_outputs_and_leaves_the_original_alone():
    nb = _nb(("code", [f"{BEGIN}\n", "x = 42\n", f"{END}\n", "assert x"]), ("markdown", ["# T"]),
             ("code", ["print(1)"]))
    copy, n = student_notebook(nb, "t.ipynb")
    assert n == 1 and copy["metadata"]["sbirlab"] == {"student_copy": True, "solutions_removed": 1}
    assert all(c.get("outputs", []) == [] for c in copy["cells"])
    assert "x = 42" not in "".join(copy["cells"][0]["source"])
    assert nb["cells"][0]["outputs"] == [{"x": 1}] and "x = 42\n" in nb["cells"][0]["source"]


def test_write_and_check_copies_in_a_folder(tmp_path):
    src = tmp_path / "nbs"
    src.mkdir()
    (src / "01_a.ipynb").write_text(json.dumps(_nb(("code", [f"{BEGIN}\n", "x = 1\n", f"{END}\n"]))))
    (src / "_template.ipynb").write_text(json.dumps(_nb(("code", ["y = 2"]))))  # not numbered: no copy
    assert stale_student_copies(src) == ["01_a.ipynb"]
    paths = write_student_copies(src)
    assert [p.name for p in paths] == ["01_a.ipynb"] and stale_student_copies(src) == []
    before = (src / "student" / "01_a.ipynb").read_bytes()
    write_student_copies(src)
    assert (src / "student" / "01_a.ipynb").read_bytes() == before  # deterministic
    (src / "01_a.ipynb").write_text(json.dumps(_nb(("code", ["z = 3"]))))  # the instructor edits it
    (src / "student" / "99_gone.ipynb").write_text("{}")  # an orphan
    assert stale_student_copies(src) == ["01_a.ipynb", "99_gone.ipynb"]
    assert main(["student", "--src", str(src), "--check"]) == 1
    assert main(["student", "--src", str(src)]) == 0
    assert main(["student", "--src", str(src), "--check"]) == 0
    assert not (src / "student" / "99_gone.ipynb").exists()


def test_a_broken_notebook_is_named(tmp_path, capsys):
    (tmp_path / "02_bad.ipynb").write_text("{not json")
    assert main(["student", "--src", str(tmp_path)]) == 2
    assert "02_bad.ipynb" in capsys.readouterr().err


def test_the_committed_student_copies_are_current_and_hold_no_solution():
    stale = stale_student_copies()
    assert not stale, f"student copies out of date: {stale}; run `sbirlab student` (or `make student`)"
    for p in sorted((REPO / "notebooks" / "student").glob("*.ipynb")):
        text = p.read_text(encoding="utf-8")
        assert BEGIN not in text and END not in text, p.name
