"""The README's "Running on the real datasets with a GPU" commands, exercised on fixture trees.

The commands are read from the README itself (its ``bash`` block), so the documentation cannot drift
from what is tested. Substitutions, and only these: the dataset roots become fixture trees in the real
layouts (every class of the standard split, tiny images), ``ViT-B-32:openai`` becomes ``ViT-B-32``
(the same architecture with random weights: the hub is out of reach here), run folders move to a
tmp folder, and ``train`` gets a two-step budget (``--set train.max_steps=2 ...``). The ``report``
command (every notebook on the real data) is not run here.
"""
from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pytest

from sbirlab.cli import main
from tests.fixtures import make_sketchy_tree, make_tuberlin_tree

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SECTION = "## Running on the real datasets with a GPU"
STEPS = ["train.max_steps=2", "train.epochs=1", "train.batch_size=4", "train.classes_per_batch=2",
         "train.warmup=1"]


def readme_commands() -> list[list[str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert SECTION in text, f"README.md lost its section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    lines = [ln.strip() for b in blocks for ln in b.replace("\\\n", " ").splitlines()]
    return [shlex.split(ln)[1:] for ln in lines if ln.startswith("sbirlab ")]


def _opt(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def _set(argv: list[str], name: str, value: str) -> None:
    argv[argv.index(name) + 1] = value


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("real")
    sketchy = make_sketchy_tree(tmp, "sempcyc", classes="all", n_photos=1, n_sketches=1, n_extra_photos=0)
    tuberlin = make_tuberlin_tree(tmp, classes="all", n_sketches=1, n_photos=1)
    # Sketchy's fine-grained basic layout is the same download: photo/tx_000000000000 beside sketch/
    fg = sketchy.parent / "sketchy_fg_from_ext"
    (fg / "sketch").mkdir(parents=True)
    os.symlink(sketchy / "sketch" / "tx_000000000000", fg / "sketch" / "tx_000000000000")
    (fg / "photo").mkdir()
    os.symlink(sketchy / "EXTEND_image_sketchy", fg / "photo" / "tx_000000000000")
    return {"sketchy": sketchy, "sketchy_fg": fg, "tuberlin": tuberlin}


def test_the_readme_section_lists_the_paper_commands():
    cmds = readme_commands()
    names = [c[0] for c in cmds]
    assert names.count("train") >= 2 and "eval" in names and "report" in names and "data" in names
    for c in cmds:
        if c[0] in ("train", "report"):
            assert _opt(c, "--preset") == "paper" and _opt(c, "--backbone") == "ViT-B-32:openai", c


def test_the_readme_commands_run_on_fixture_trees(roots, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("SBIRLAB_DATA", str(tmp_path / "data"))  # nothing from the machine's own data
    ran = []
    for argv in readme_commands():
        argv = list(argv)
        if argv[0] == "report":
            continue
        if "--root" in argv:
            _set(argv, "--root", str(roots[_opt(argv, "--dataset")]))
        if "--backbone" in argv:
            _set(argv, "--backbone", _opt(argv, "--backbone").replace(":openai", ""))
        for flag in ("--out", "--run"):
            if flag in argv:
                _set(argv, flag, str(tmp_path / _opt(argv, flag)))
        if argv[0] == "train":
            argv += ["--set", *STEPS]
        code = main(argv)
        out = capsys.readouterr()
        assert code == 0, f"sbirlab {' '.join(argv)} failed:\n{out.err[-2000:]}"
        ran.append(argv)
        if argv[0] == "train":
            run = Path(_opt(argv, "--out"))
            cfg = json.loads((run / "config.json").read_text())
            m = json.loads((run / "metrics.json").read_text())
            assert cfg["preset"] == "paper" and cfg["backbone"] == "ViT-B-32" and m["train_steps"] == 2
            assert cfg["train"]["amp"] == "auto"  # fp16 autocast on CUDA; off on this CPU
            key = "Acc@1" if cfg["setting"] == "fg" else "mAP@all"
            assert 0.0 <= m[key] <= 1.0 and m["n_queries"] > 0
            assert m["split"] in ("sketchy_yelamarthi21", "sketchy_fg21", "tuberlin_30")
        if argv[0] == "eval":
            m = json.loads(out.out)
            assert m["dataset"] == "sketchy" and m["n_gallery"] > 0
        if argv[0] == "data":
            s = json.loads(out.out)
            assert s["split"] == "sketchy_yelamarthi21"
    assert [a[0] for a in ran].count("train") >= 3
