"""Results tables laid out like CLIP-AT's Table 1, with the published numbers beside ours.

Sain et al., *CLIP for All Things Zero-Shot Sketch-Based Image Retrieval, Fine-Grained or Not*,
CVPR 2023 (arXiv 2303.13440), Table 1: rows are the CLIP baselines B-FT ... B-Deep and CLIP-AT
(:data:`sbirlab.models.registry.TABLE1`), columns the category-level (ZS) and fine-grained (FG)
metrics. :func:`table1` builds that table from our run metrics (``metrics.json`` dicts, as
:func:`sbirlab.experiment.run_experiment` writes them) and adds the paper's Sketchy / ViT-B/32
numbers (docs/methods.md §3.5) in separate, clearly labelled columns: they come from another
dataset and another backbone, so they show the *shape* to expect, never a target for our values.

Units: ZS metrics are fractions in [0, 1] (as the paper prints mAP); FG accuracies are shown in
percent (as the paper prints Acc@k), our fractions are multiplied by 100 (``fg_percent=True``).

:func:`paper_ordering_checks` tests, claim by claim, whether our numbers follow the ordering the
paper reports (CLIP-AT > B-Deep ~ B-IP ~ B-MM > B-Cond > B-Lin > B-FT); :func:`to_markdown` renders
any of these tables without extra dependencies (pandas' own ``to_markdown`` needs ``tabulate``).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "DISPLAY_NAMES",
    "ZS_COLUMNS",
    "FG_COLUMNS",
    "PUBLISHED_SOURCE",
    "PUBLISHED",
    "PUBLISHED_ABLATIONS",
    "collect_results",
    "table1",
    "ablation_table",
    "paper_ordering_checks",
    "to_markdown",
]

#: row labels (the paper's names); ``frozen`` is our zero-shot reference row
DISPLAY_NAMES: dict[str, str] = {
    "frozen": "Zero-shot CLIP (frozen)",
    "b-ft": "B-FT",
    "b-lin": "B-Lin",
    "b-cond": "B-Cond",
    "b-ip": "B-IP",
    "b-mm": "B-MM",
    "b-deep": "B-Deep",
    "clip-at": "CLIP-AT",
    "dp-clip": "DP-CLIP",
    "splip": "SpLIP",
}

#: the settings a results entry may carry (generalised ZS evaluates a ZS-trained run on the GZS set)
SETTINGS: tuple[str, ...] = ("zs", "gzs", "fg")

ZS_COLUMNS: tuple[str, ...] = ("mAP@all", "mAP@200", "P@100", "P@200")
FG_COLUMNS: tuple[str, ...] = ("Acc@1", "Acc@5")

PUBLISHED_SOURCE = "published (Sketchy, ViT-B/32)"

#: CLIP-AT Table 1 as docs/methods.md §3.5 records it: Sketchy mAP@200 (fraction) and FG Acc@1 (percent)
PUBLISHED: dict[str, dict[str, float]] = {
    "b-ft": {"mAP@200": 0.102, "Acc@1": 1.23},
    "b-lin": {"mAP@200": 0.422, "Acc@1": 15.75},
    "b-cond": {"mAP@200": 0.618, "Acc@1": 25.98},
    "b-ip": {"mAP@200": 0.691, "Acc@1": 26.69},
    "b-mm": {"mAP@200": 0.685, "Acc@1": 27.16},
    "b-deep": {"mAP@200": 0.702, "Acc@1": 27.62},
    "clip-at": {"mAP@200": 0.723, "Acc@1": 28.68, "Acc@5": 62.34},
}

#: CLIP-AT's published ablations (docs/methods.md §4.6), keyed by our run-name suffix
#: (see :func:`sbirlab.experiment.run_name`); Sketchy, ViT-B/32; mAP@200 fraction, Acc@k percent
PUBLISHED_ABLATIONS: dict[str, dict[str, dict[str, float]]] = {
    "zs": {"full": {"mAP@200": 0.723}, "tune_ln=False": {"mAP@200": 0.698}},
    "fg": {"full": {"Acc@1": 28.68, "Acc@5": 62.34}, "lambda_cls=0": {"Acc@1": 10.69},
           "lambda_ps=0": {"Acc@1": 25.18}, "lambda_fdiv=0": {"Acc@1": 24.93}},
}

#: the paper's ordering, as groups from best to worst (members of one group are "about equal")
PAPER_ORDER: tuple[tuple[str, ...], ...] = (("clip-at",), ("b-deep", "b-ip", "b-mm"), ("b-cond",), ("b-lin",),
                                            ("b-ft",))


def _default_methods() -> tuple[str, ...]:
    from .models.registry import TABLE1

    return tuple(TABLE1)


def collect_results(results: Any) -> dict[str, dict[str, dict]]:
    """Normalise run results to ``{method: {setting: metrics}}``.

    Accepts:

    * an iterable of flat metrics dicts carrying ``"method"`` and ``"setting"`` keys (the
      ``metrics.json`` of each run, or ``LoadedRun.metrics``);
    * a mapping ``{(method, setting): metrics}``;
    * a mapping ``{method: {setting: metrics}}`` (returned as a copy).

    Raises:
        ValueError: a flat dict without ``method`` / ``setting``, or an unknown setting.
    """
    out: dict[str, dict[str, dict]] = {}

    def put(method: str, setting: str, metrics: Mapping) -> None:
        if setting not in SETTINGS:
            raise ValueError(f"unknown setting {setting!r} for {method!r} (expected one of {SETTINGS})")
        out.setdefault(str(method).lower(), {})[setting] = dict(metrics)

    if isinstance(results, Mapping):
        for key, val in results.items():
            if isinstance(key, tuple):
                put(key[0], key[1], val)
            elif isinstance(val, Mapping) and set(val) <= set(SETTINGS):
                for setting, m in val.items():
                    put(key, setting, m)
            else:
                raise ValueError(f"cannot read results entry {key!r}: expected (method, setting) keys or "
                                 "{method: {setting: metrics}}")
        return out
    for m in results:
        m = getattr(m, "metrics", m)  # a LoadedRun
        if not isinstance(m, Mapping) or "method" not in m or "setting" not in m:
            raise ValueError("each result must be a metrics dict with 'method' and 'setting' keys")
        put(m["method"], m["setting"], m)
    return out


def _num(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def table1(results: Any, methods: Sequence[str] | None = None, reference: bool = True, published: bool = True,
           fg_percent: bool = True, markdown: bool = False, digits: int = 3):
    """A results table laid out like CLIP-AT's Table 1.

    Args:
        results: run metrics in any form :func:`collect_results` accepts.
        methods: row order; default :data:`~sbirlab.models.registry.TABLE1` (B-FT ... CLIP-AT).
            Methods without results get empty (NaN) cells.
        reference: put the frozen zero-shot CLIP row first when ``results`` holds it.
        published: add the paper's numbers in columns labelled :data:`PUBLISHED_SOURCE`.
        fg_percent: show FG accuracies in percent (the paper's unit).
        markdown: return a markdown string instead of the DataFrame.
        digits: decimals of the markdown rendering.

    Returns:
        A ``pandas.DataFrame`` indexed by the method's display name, columns ``ZS mAP@all``,
        ``ZS mAP@200``, ``ZS P@100``, ``ZS P@200``, ``FG Acc@1 (%)``, ``FG Acc@5 (%)`` and, with
        ``published``, ``mAP@200 — published (Sketchy, ViT-B/32)`` and ``Acc@1 (%) — published ...``;
        or its markdown rendering.
    """
    import pandas as pd

    res = collect_results(results)
    rows = list(methods) if methods is not None else list(_default_methods())
    if reference and "frozen" in res and "frozen" not in rows:
        rows = ["frozen", *rows]
    unit = " (%)" if fg_percent else ""
    scale = 100.0 if fg_percent else 1.0
    records, index = [], []
    for m in rows:
        zs, fg = res.get(m, {}).get("zs", {}), res.get(m, {}).get("fg", {})
        rec = {f"ZS {c}": _num(zs.get(c)) for c in ZS_COLUMNS}
        rec.update({f"FG {c}{unit}": _num(fg.get(c)) * scale for c in FG_COLUMNS})
        if published:
            pub = PUBLISHED.get(m, {})
            rec[f"mAP@200 — {PUBLISHED_SOURCE}"] = _num(pub.get("mAP@200"))
            rec[f"Acc@1{unit} — {PUBLISHED_SOURCE}"] = _num(pub.get("Acc@1")) * (1.0 if fg_percent else 0.01)
        records.append(rec)
        index.append(DISPLAY_NAMES.get(m, m))
    df = pd.DataFrame.from_records(records, index=pd.Index(index, name="method"))
    return to_markdown(df, digits) if markdown else df


def ablation_table(results: Mapping[str, Mapping], setting: str, columns: Sequence[str] | None = None,
                   published: bool = True, fg_percent: bool = True, markdown: bool = False, digits: int = 3):
    """A small ablation table: one row per variant, our metrics and the paper's where it reports them.

    Args:
        results: ``{variant: metrics}``; variant keys are ``"full"`` or run-name suffixes such as
            ``"tune_ln=False"``, ``"lambda_cls=0"`` (the keys of :data:`PUBLISHED_ABLATIONS`).
        setting: ``"zs"`` or ``"fg"`` (selects the default columns and the published values).
        columns: metric keys; default ZS: mAP@all, mAP@200, P@100, P@200; FG: Acc@1, Acc@5, Acc@10.
        published, fg_percent, markdown, digits: as :func:`table1`.
    """
    import pandas as pd

    if setting not in ("zs", "fg"):
        raise ValueError(f"setting must be 'zs' or 'fg', got {setting!r}")
    cols = list(columns) if columns else (list(ZS_COLUMNS) if setting == "zs" else ["Acc@1", "Acc@5", "Acc@10"])
    is_acc = [c.startswith("Acc@") for c in cols]
    scale = [100.0 if (a and fg_percent) else 1.0 for a in is_acc]
    names = [f"{c} (%)" if (a and fg_percent) else c for c, a in zip(cols, is_acc)]
    pub_all = PUBLISHED_ABLATIONS[setting]
    pub_cols = sorted({k for v in pub_all.values() for k in v}, key=lambda k: (not k.startswith("mAP"), k))
    records = []
    for variant, m in results.items():
        rec = {n: _num(m.get(c)) * s for n, c, s in zip(names, cols, scale)}
        if published:
            for c in pub_cols:
                v = _num(pub_all.get(variant, {}).get(c))
                if c.startswith("Acc@") and not fg_percent:
                    v /= 100.0
                unit = " (%)" if c.startswith("Acc@") and fg_percent else ""
                rec[f"{c}{unit} — {PUBLISHED_SOURCE}"] = v
        records.append(rec)
    df = pd.DataFrame.from_records(records, index=pd.Index(list(results), name="variant"))
    return to_markdown(df, digits) if markdown else df


def paper_ordering_checks(results: Any, metric: str = "mAP@200", setting: str = "zs",
                          tolerance: float = 0.02) -> list[dict]:
    """Does our ordering of the methods follow the paper's (CLIP-AT > B-Deep ~ B-IP ~ B-MM > B-Cond > B-Lin > B-FT)?

    One claim per pair of adjacent groups of :data:`PAPER_ORDER`: "every method of the better group
    beats every method of the worse one" (the group's minimum against the next group's maximum), plus
    one "about equal" claim for the middle group (spread <= ``tolerance``, in the metric's own unit:
    the default 0.02 admits the paper's own spread, 0.017 mAP@200 and 0.0093 Acc@1).

    Args:
        results: run metrics in any form :func:`collect_results` accepts.
        metric: the metric compared (``"mAP@200"`` for ZS, ``"Acc@1"`` for FG).
        setting: ``"zs"`` or ``"fg"``.
        tolerance: how far apart the members of the "about equal" group may be. "Better" claims are
            always strict (``>``).

    Returns:
        A list of ``{"claim": str, "holds": bool | None, "values": {method: value}}``; ``holds`` is
        None when a method of the claim has no result.
    """
    res = collect_results(results)

    def val(m: str) -> float:
        return _num(res.get(m, {}).get(setting, {}).get(metric))

    def name(group: Sequence[str]) -> str:
        return " / ".join(DISPLAY_NAMES.get(m, m) for m in group)

    checks = []
    for better, worse in zip(PAPER_ORDER, PAPER_ORDER[1:]):
        values = {m: val(m) for m in (*better, *worse)}
        if any(math.isnan(v) for v in values.values()):
            holds = None
        else:
            holds = bool(min(values[m] for m in better) > max(values[m] for m in worse))
        checks.append({"claim": f"{name(better)} > {name(worse)}", "holds": holds, "values": values})
    for group in PAPER_ORDER:
        if len(group) > 1:
            values = {m: val(m) for m in group}
            if any(math.isnan(v) for v in values.values()):
                holds = None
            else:
                holds = bool(max(values.values()) - min(values.values()) <= tolerance)
            checks.append({"claim": f"{' ≈ '.join(DISPLAY_NAMES.get(m, m) for m in group)} "
                                    f"(spread <= {tolerance:g})", "holds": holds, "values": values})
    return checks


def seed_summary(tables: Sequence[Mapping[str, Mapping]]) -> dict[str, dict[str, dict]]:
    """Mean and standard deviation over seeds of every numeric metric of every run.

    Args:
        tables: one ``{run name: metrics}`` mapping per seed (e.g. the ``runs`` of each seed's
            ``table.json``). A run missing from some seeds is summarised over the seeds that have it.

    Returns:
        ``{run name: {metric: {"mean", "std", "n", "values"}}}``; ``std`` is the sample standard
        deviation (ddof 1; 0.0 with one seed), so ``mean ± 2 std`` separates two rows or marks a tie.
    """
    out: dict[str, dict[str, dict]] = {}
    names = list(dict.fromkeys(n for t in tables for n in t))
    for name in names:
        per: dict[str, list[float]] = {}
        for t in tables:
            for k, v in (t.get(name) or {}).items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("seed",):
                    per.setdefault(k, []).append(float(v))
        out[name] = {k: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                         "n": len(v), "values": v} for k, v in per.items()}
    return out


def separated(a: Mapping, b: Mapping, k: float = 2.0) -> str:
    """``">"``, ``"<"`` or ``"tie"``: whether two :func:`seed_summary` entries of one metric differ by more
    than ``k`` times the larger of their standard deviations (the issue's "gaps larger than 2 std")."""
    gap, spread = a["mean"] - b["mean"], k * max(a["std"], b["std"])
    return ">" if gap > spread else "<" if -gap > spread else "tie"


def _fmt(v: Any, digits: int) -> str:
    if isinstance(v, bool) or v is None:
        return "" if v is None else str(v)
    if isinstance(v, (int, float)):
        if isinstance(v, float) and math.isnan(v):
            return "–"
        return f"{v:.{digits}f}" if isinstance(v, float) else str(v)
    try:  # numpy scalars
        f = float(v)
        return "–" if math.isnan(f) else f"{f:.{digits}f}"
    except (TypeError, ValueError):
        return str(v).replace("|", "\\|")


def to_markdown(df, digits: int = 3) -> str:
    """Render a DataFrame (index included) as a GitHub markdown table; NaN shows as "–"."""
    head = [str(df.index.name or "")] + [str(c) for c in df.columns]
    lines = ["| " + " | ".join(h.replace("|", "\\|") for h in head) + " |",
             "|" + "|".join(["---"] + ["---:"] * len(df.columns)) + "|"]
    for idx, row in zip(df.index, df.itertuples(index=False)):
        cells = [str(idx).replace("|", "\\|")] + [_fmt(v, digits) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)

