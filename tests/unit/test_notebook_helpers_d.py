"""The helpers notebooks 11 (sketch and retrieve) and 12 (generalisation) call instead of inline code:
:func:`sbirlab.widgets.replay.partial_steps` / :func:`~sbirlab.widgets.replay.plot_partial_sketches` and
:func:`sbirlab.generalisation.sweep_plan`."""
from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from sbirlab import generalisation as G  # noqa: E402
from sbirlab.data.strokes import rasterize_strokes  # noqa: E402
from sbirlab.widgets.replay import partial_steps, plot_partial_sketches  # noqa: E402


# ------------------------------------------------------------------------------------ partial sketches

@pytest.mark.parametrize("n, steps", [(1, [1]), (2, [1, 2]), (3, [1, 2, 3]), (4, [1, 2, 3, 4]),
                                      (8, [1, 2, 4, 6, 8]), (13, [1, 3, 6, 9, 13])])
def test_partial_steps(n, steps):
    assert partial_steps(n) == steps


def test_partial_steps_as_notebook_11_computed_them():
    for n in range(1, 60):
        inline = sorted({k for k in (1, max(1, n // 4), max(1, n // 2), max(1, 3 * n // 4), n)})
        assert partial_steps(n) == inline


def _sketch(n):
    rng = np.random.default_rng(n)
    strokes = [rng.uniform(20, 236, size=(5, 2)) for _ in range(n)]
    widths = list(rng.uniform(2, 6, size=n))
    trajectory = [{"n_strokes": i + 1, "photo_rank": 10 - i, "class_rank": 1} for i in range(n)]
    return strokes, widths, trajectory


@pytest.mark.parametrize("widths_given", [True, False])
def test_plot_partial_sketches_draws_the_prefixes(widths_given):
    strokes, widths, traj = _sketch(8)
    widths = widths if widths_given else None
    fig = plot_partial_sketches(strokes, widths, traj, title="one sketch", size=32)
    try:
        axes = fig.axes
        assert len(axes) == len(partial_steps(8)) == 5
        assert fig._suptitle.get_text() == "one sketch"
        for ax, n in zip(axes, partial_steps(8)):
            want = rasterize_strokes(strokes[:n], size=32, widths=None if widths is None else widths[:n])
            np.testing.assert_array_equal(ax.images[0].get_array(), np.asarray(want))
            assert ax.get_title() == f"{n}/8 strokes\nphoto rank {traj[n - 1]['photo_rank']}"
    finally:
        plt.close(fig)


def test_plot_partial_sketches_single_stroke():
    strokes, widths, traj = _sketch(1)
    fig = plot_partial_sketches(strokes, widths, traj)
    try:
        assert len(fig.axes) == 1 and fig._suptitle is None
        assert fig.axes[0].images[0].get_array().shape[:2] == (64, 64)
    finally:
        plt.close(fig)


# ------------------------------------------------------------------------------------------ sweep plan

def _ship(root, preset="cpu", seed=0):
    d = root / "generalisation" / preset / f"seed{seed}"
    d.mkdir(parents=True)
    (d / "sweep.json").write_text(json.dumps({"points": []}))
    return d


def test_sweep_plan_default_without_shipped_sweep(tmp_path):
    shipped = tmp_path / "shipped"
    plan = G.sweep_plan("default", "clip-at, b-deep,,b-lin", "1.0,0.1,0.3,0.1", "5,15,all", runs=tmp_path / "runs",
                        shipped_root=shipped)
    assert plan.preset == "cpu" and plan.methods == ["clip-at", "b-deep", "b-lin"]
    assert plan.fractions == [0.1, 0.3, 1.0] and plan.class_counts == [5, 15, None] and plan.train == {}
    assert plan.sweep_dir == tmp_path / "runs" / "generalisation" / "cpu" / "seed0"
    assert plan.shipped_dir == shipped / "generalisation" / "cpu" / "seed0"
    assert plan.reuse_from == shipped and plan.record is True


def test_sweep_plan_default_reads_a_shipped_sweep(tmp_path):
    shipped = tmp_path / "shipped"
    d = _ship(shipped, seed=3)
    plan = G.sweep_plan("default", seed=3, runs=tmp_path / "runs", shipped_root=shipped)
    assert plan.sweep_dir == d == plan.shipped_dir and plan.record is False and plan.reuse_from == shipped
    other_seed = G.sweep_plan("default", seed=1, runs=tmp_path / "runs", shipped_root=shipped)
    assert other_seed.record is True and other_seed.sweep_dir.parent == tmp_path / "runs" / "generalisation" / "cpu"


def test_sweep_plan_steps_and_cpu_never_read_the_shipped_sweep(tmp_path):
    shipped = tmp_path / "shipped"
    _ship(shipped)
    with_steps = G.sweep_plan("default", steps=40, runs=tmp_path, shipped_root=shipped)
    assert with_steps.train == {"max_steps": 40} and with_steps.reuse_from is None and with_steps.record
    cpu = G.sweep_plan("cpu", runs=tmp_path, shipped_root=shipped)
    assert cpu.preset == "cpu" and cpu.train == {} and cpu.reuse_from is None and cpu.record
    assert cpu.sweep_dir == tmp_path / "generalisation" / "cpu" / "seed0"


def test_sweep_plan_ci_keeps_the_ends_of_each_axis(tmp_path):
    plan = G.sweep_plan("ci", "clip-at", "0.3,0.1,1.0", "15,5,all", steps=99, seed=2, runs=tmp_path,
                        shipped_root=tmp_path / "none")
    assert plan.preset == "ci" and plan.train == {"max_steps": 2}
    assert plan.fractions == [0.1, 1.0] and plan.class_counts == [5, None]
    assert plan.sweep_dir == tmp_path / "generalisation" / "ci" / "seed2" and plan.reuse_from is None


def test_sweep_plan_points_match_sweep_configs(tmp_path):
    plan = G.sweep_plan("ci", runs=tmp_path, shipped_root=tmp_path)
    pts = [p for p, _ in G.sweep_configs(plan.methods, plan.fractions, plan.class_counts, preset=plan.preset)]
    assert len(pts) == 3 * 3  # per method: 2 fractions (one the full point) + the 5-class point
