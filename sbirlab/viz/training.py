"""Training curves and result plots for the notebooks.

:class:`LiveCurves` is a callback for :func:`sbirlab.train.loop.fit` (and everything that forwards
callbacks to it: :func:`sbirlab.experiment.run_experiment`, :func:`~sbirlab.experiment.load_or_train`).
The loop calls ``cb(step, logs)`` after every batch and ``cb.on_epoch(epoch, record)`` after every
epoch; the loop knows nothing about Jupyter (as minGPT's trainer callbacks). In a live notebook the
figure is redrawn in place every ``every`` steps through one IPython display handle; elsewhere
(scripts, tests, papermill with ``mode="quiet"``) it only records, and :meth:`LiveCurves.plot` draws
the final figure once.

:func:`plot_history` draws the per-epoch ``history.json`` of a saved run (shipped runs have no live
training to watch); :func:`run_dir_for` finds that folder the way
:func:`~sbirlab.experiment.load_or_train` does. :func:`plot_method_bars` and
:func:`plot_rank_histogram` are the result plots of notebooks 03 and 05.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["LiveCurves", "in_notebook", "plot_history", "run_dir_for", "plot_method_bars",
           "plot_rank_histogram"]

QUIET_ENV = "SBIRLAB_QUIET_PLOTS"


def in_notebook() -> bool:
    """True inside a Jupyter kernel (ZMQ shell) unless ``$SBIRLAB_QUIET_PLOTS`` is set to 1/true."""
    if os.environ.get(QUIET_ENV, "").lower() in ("1", "true", "yes"):
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _ema(values: Sequence[float], alpha: float) -> list[float]:
    out, m = [], None
    for v in values:
        m = v if m is None else alpha * m + (1 - alpha) * v
        out.append(m)
    return out


class LiveCurves:
    """A ``cb(step, logs)`` training callback that records losses and draws them.

    Args:
        every: redraw every this many steps (live mode only).
        keys: the logged values to draw (default: every numeric key except ``epoch``).
        mode: ``"live"`` (update a figure in place via IPython display), ``"quiet"`` (record only) or
            ``"auto"`` (live inside a Jupyter kernel, see :func:`in_notebook`).
        smooth: exponential moving average factor in [0, 1) for the drawn step curves (0 = raw).
        title: figure title.
        val_key: the per-epoch validation metric drawn on the right axis (from ``on_epoch`` records).

    Example:
        >>> curves = LiveCurves(every=10)
        >>> fit(method, data, val, cfg, callbacks=[curves], epoch_callbacks=[curves.on_epoch])
        >>> fig = curves.plot()
    """

    def __init__(self, every: int = 10, keys: Sequence[str] | None = None, mode: str = "auto",
                 smooth: float = 0.0, title: str = "", val_key: str | None = None):
        if mode not in ("auto", "live", "quiet"):
            raise ValueError(f"mode must be 'auto', 'live' or 'quiet', got {mode!r}")
        if not 0.0 <= smooth < 1.0:
            raise ValueError(f"smooth must be in [0, 1), got {smooth}")
        self.every = max(1, int(every))
        self.keys = list(keys) if keys else None
        self.live = in_notebook() if mode == "auto" else mode == "live"
        self.smooth = smooth
        self.title = title
        self.val_key = val_key
        self.steps: list[int] = []
        self.logs: dict[str, list[float]] = {}
        self.epochs: list[dict] = []
        self._handle = None
        self._fig = None

    # -- callbacks ---------------------------------------------------------------------------
    def __call__(self, step: int, logs: Mapping[str, Any]) -> None:
        self.steps.append(int(step))
        n = len(self.steps)
        for k, v in logs.items():
            if k == "epoch" or not isinstance(v, (int, float)) or isinstance(v, bool):
                continue
            if self.keys and k not in self.keys:
                continue
            seq = self.logs.setdefault(k, [])
            seq.extend([math.nan] * (n - 1 - len(seq)))  # a key that appears late
            seq.append(float(v))
        if self.live and step % self.every == 0:
            self.update()

    def on_epoch(self, epoch: int, record: Mapping[str, Any]) -> None:
        """Epoch callback (``epoch_callbacks=[curves.on_epoch]``): keeps the validation record."""
        self.epochs.append({"epoch": int(epoch), **dict(record)})
        if self.live:
            self.update()

    # -- drawing -----------------------------------------------------------------------------
    def _val_key(self) -> str | None:
        if self.val_key:
            return self.val_key
        for key in ("val/mAP@all", "val/Acc@1"):
            if any(key in r for r in self.epochs):
                return key
        return None

    def plot(self, ax=None):
        """Draw the recorded curves (losses per step; validation metric per epoch on a twin axis)."""
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(6.5, 3.2))
        else:
            fig = ax.figure
        ax.clear()
        for k, seq in self.logs.items():
            y = _ema(seq, self.smooth) if self.smooth else seq
            ax.plot(self.steps[:len(y)], y, label=k, lw=1.2)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        vk = self._val_key()
        if vk:
            pts = [(r["step"], r[vk]) for r in self.epochs if vk in r and "step" in r]
            if pts:
                ax2 = ax.twinx()
                ax2.plot(*zip(*pts), "o--", color="black", label=vk)
                ax2.set_ylabel(vk)
                ax2.legend(loc="upper right", fontsize=8)
        if self.logs:
            ax.legend(loc="upper left" if vk else "best", fontsize=8)
        else:
            ax.text(0.5, 0.5, "no training steps recorded", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(self.title or f"training ({len(self.steps)} steps)")
        fig.tight_layout()
        return fig

    def update(self) -> None:
        """Redraw the live figure in place (no-op in quiet mode)."""
        if not self.live:
            return
        import matplotlib.pyplot as plt
        from IPython.display import display

        if self._fig is None:
            self._fig = plt.figure(figsize=(6.5, 3.2))
        self._fig.clf()
        self.plot(self._fig.add_subplot(111))
        if self._handle is None:
            self._handle = display(self._fig, display_id=True)
        else:
            self._handle.update(self._fig)
        plt.close(self._fig)  # keep the inline backend from drawing it a second time

    def history(self) -> dict:
        """The recorded values, JSON-ready: ``{"step": [...], key: [...], "epochs": [...]}``."""
        return {"step": list(self.steps), **{k: list(v) for k, v in self.logs.items()}, "epochs": list(self.epochs)}


# ---------------------------------------------------------------------------------------------
def run_dir_for(cfg, preset: str, out_root: str | os.PathLike | None = None) -> Path:
    """The folder :func:`~sbirlab.experiment.load_or_train` loads ``cfg``'s run from (or trains it into)."""
    from ..experiment import run_name, shipped_runs_dir

    name = run_name(cfg)
    if preset == "default":
        shipped = shipped_runs_dir() / name
        if (shipped / "metrics.json").exists() and cfg.dataset == "synthetic" and cfg.backbone == "tiny-synthetic":
            return shipped
        preset = "cpu"
    return Path(out_root or "runs") / preset / name


def plot_history(history: str | os.PathLike | Sequence[Mapping], keys: Sequence[str] | None = None,
                 val_key: str | None = None, ax=None, title: str = ""):
    """Per-epoch curves of a saved run: ``history.json`` (a run folder or the file) or its records.

    Args:
        history: a run folder, a ``history.json`` path, or the list of epoch records.
        keys: training keys to draw (default: every ``train/*`` key).
        val_key: validation metric for the twin axis (default ``val/mAP@all`` or ``val/Acc@1``).
    """
    import matplotlib.pyplot as plt

    if isinstance(history, (str, os.PathLike)):
        p = Path(history)
        p = p / "history.json" if p.is_dir() else p
        records = json.loads(p.read_text()) if p.exists() else []
    else:
        records = list(history)
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 3.2))
    else:
        fig = ax.figure
    x = [r.get("epoch", i + 1) for i, r in enumerate(records)]
    keys = list(keys) if keys else sorted({k for r in records for k in r if k.startswith("train/")})
    for k in keys:
        ax.plot(x, [r.get(k, math.nan) for r in records], "o-", label=k, lw=1.2)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean training loss")
    vk = val_key or next((k for k in ("val/mAP@all", "val/Acc@1") if any(k in r for r in records)), None)
    if vk:
        ax2 = ax.twinx()
        ax2.plot(x, [r.get(vk, math.nan) for r in records], "s--", color="black", label=vk)
        ax2.set_ylabel(vk)
        ax2.legend(loc="upper right", fontsize=8)
    if keys:
        ax.legend(loc="upper left", fontsize=8)
    if not records:
        ax.text(0.5, 0.5, "no history recorded", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title or f"{len(records)} epoch(s)")
    fig.tight_layout()
    return fig


def plot_method_bars(df, columns: Sequence[str], ax=None, title: str = "", published: str | None = None):
    """Grouped bars: one group per method (rows of ``df``), one bar per metric column.

    Args:
        df: a table such as :func:`sbirlab.tables.table1` returns (index = method names).
        columns: the columns to draw (same unit).
        published: optional column with the paper's values, drawn as black markers.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    if ax is None:
        fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(df)), 3.4))
    else:
        fig = ax.figure
    n, k = len(df), len(columns)
    x = np.arange(n)
    w = 0.8 / max(1, k)
    for j, c in enumerate(columns):
        ax.bar(x + (j - (k - 1) / 2) * w, df[c].to_numpy(dtype=float), w, label=c)
    tops = [df[c].to_numpy(dtype=float) for c in columns]
    if published and published in df:
        ax.plot(x, df[published].to_numpy(dtype=float), "k_", ms=18, mew=2.5, label=published)
        tops.append(df[published].to_numpy(dtype=float))
    ymax = float(np.nanmax(np.concatenate(tops))) if tops and not np.isnan(np.concatenate(tops)).all() else 1.0
    ax.set_ylim(0, (ymax if ymax > 0 else 1.0) * 1.4)  # headroom for the legend
    ax.set_xticks(x, [str(i) for i in df.index], rotation=25, ha="right")
    ax.legend(fontsize=8, loc="upper left", ncol=2)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_rank_histogram(ranks: Iterable[int] | Mapping[str, Iterable[int]], max_rank: int | None = None, ax=None,
                        title: str = "rank of the true match"):
    """Histogram of the 1-based rank of each query's paired photo, series side by side.

    Args:
        ranks: the ranks, or ``{name: ranks}`` for several models (``fg_accuracy(..., return_ranks=True)``).
        max_rank: ranks above it are counted in a last bin labelled ">= max_rank" (default: the largest rank).
    """
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    series = dict(ranks) if isinstance(ranks, Mapping) else {"": ranks}
    series = {k: np.asarray(list(v), dtype=int) for k, v in series.items()}
    top = max((int(v.max()) for v in series.values() if v.size), default=1)
    hi = min(max_rank, top) if max_rank else top
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.0, 3.0))
    else:
        fig = ax.figure
    x = np.arange(1, hi + 1)
    w = 0.85 / max(1, len(series))
    for j, (name, v) in enumerate(series.items()):
        counts = np.bincount(np.minimum(v, hi), minlength=hi + 1)[1:]  # [hi], ranks 1..hi
        ax.bar(x + (j - (len(series) - 1) / 2) * w, counts, w, label=name or None)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("rank of the paired photo (1 = retrieved first)" + (f"; last bar: ≥ {hi}" if top > hi else ""))
    ax.set_ylabel("queries")
    if any(series):
        ax.legend(fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    return fig
