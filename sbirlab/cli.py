"""The ``sbirlab`` command line. ``main(argv=None)``; nothing is parsed at import time.

Sub-commands::

    sbirlab data summary --dataset NAME [--root DIR] [--split NAME] [--json]
    sbirlab data generate [--size 64] [--seed 0] [--photos-per-class 50]
    sbirlab pretrain [--out runs/pretrain] [--set samples=N ...] [--ship data/checkpoints/tiny-synthetic.pt]
    sbirlab train --method clip-at --dataset synthetic --setting zs --preset cpu --out runs/NAME [--resume]
    sbirlab eval --run runs/NAME
    sbirlab report [--preset default] [--only 01,03] [--dataset NAME] [--backbone SPEC]
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sbirlab", description="zero-shot sketch-based image retrieval with CLIP")
    sub = p.add_subparsers(dest="cmd", required=True)

    data = sub.add_parser("data", help="datasets: summaries and the synthetic world")
    dsub = data.add_subparsers(dest="data_cmd", required=True)
    s = dsub.add_parser("summary", help="class and item counts of every partition")
    s.add_argument("--dataset", default="synthetic")
    s.add_argument("--root", default=None, help="dataset folder (default: $SBIRLAB_DATA/<name> or data/<name>)")
    s.add_argument("--split", default=None, help="split name (default: the dataset's standard split)")
    s.add_argument("--json", action="store_true", help="print JSON")
    g = dsub.add_parser("generate", help="write the synthetic world to disk (cached)")
    g.add_argument("--root", default=None)
    g.add_argument("--size", type=int, default=64)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--photos-per-class", type=int, default=50)
    g.add_argument("--workers", type=int, default=2)

    pt = sub.add_parser("pretrain", help="pretrain the tiny CLIP on the synthetic world")
    pt.add_argument("--out", default="runs/pretrain", help="working folder (state.pt, history.json)")
    pt.add_argument("--ship", default=None, help="write the fp16 checkpoint here when done")
    pt.add_argument("--no-resume", action="store_true")
    pt.add_argument("--no-gates", action="store_true", help="with --ship: skip measuring the gates for the model card")
    pt.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="override PretrainConfig fields, e.g. samples=400000 drawing_share=0.3")
    tr = sub.add_parser("train", help="train a method and evaluate it on the test classes")
    tr.add_argument("--method", default="clip-at")
    tr.add_argument("--setting", default="zs", choices=["zs", "gzs", "fg"],
                    help="zs: unseen classes; gzs: generalised (trains as zs, tests on unseen + 20%% seen); fg: instance level")
    tr.add_argument("--dataset", default="synthetic")
    tr.add_argument("--root", default=None)
    tr.add_argument("--split", default=None)
    tr.add_argument("--backbone", default="tiny-synthetic")
    tr.add_argument("--preset", default="cpu", choices=["ci", "cpu", "paper"])
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--device", default="auto")
    tr.add_argument("--out", required=True, help="run folder (config.json, metrics.json, checkpoints)")
    tr.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    tr.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="method options (e.g. lambda_cls=0) or train.KEY=VALUE (e.g. train.epochs=2)")

    tb = sub.add_parser("table", help="train every method of the results table (resumable)")
    tb.add_argument("--preset", default="cpu", choices=["ci", "cpu", "paper"])
    tb.add_argument("--out", default="runs/table")
    tb.add_argument("--methods", default=None, help="comma-separated (default: frozen + Table 1)")
    tb.add_argument("--settings", default="zs,fg", help="comma-separated of zs, gzs, fg")
    tb.add_argument("--no-ablations", action="store_true")
    tb.add_argument("--backbone", default="tiny-synthetic")
    tb.add_argument("--seeds", default="0",
                    help="comma-separated seeds; seed 0 goes to OUT, seed s to OUT/seed<s>; with several, "
                         "OUT/table_seeds.json holds every metric's mean and std over the seeds")

    ev = sub.add_parser("eval", help="evaluate a saved run on its test classes")
    ev.add_argument("--run", required=True)
    ev.add_argument("--doodles", metavar="DIR",
                    help="real doodles (QuickDraw ndjson files named by their word) as queries of the run")
    ev.add_argument("--json", action="store_true", help="print JSON only (the default output is JSON too)")

    rp = sub.add_parser("report", help="execute every notebook with papermill into reports/")
    rp.add_argument("--preset", default="default", choices=["default", "ci", "cpu", "paper"])
    rp.add_argument("--out", default="reports")
    rp.add_argument("--only", default=None, help="comma-separated notebook numbers or name parts")
    rp.add_argument("--dataset", default=None)
    rp.add_argument("--backbone", default=None)

    st = sub.add_parser("student", help="write notebooks/student/ (the notebooks with solutions removed)")
    st.add_argument("--src", default=None, help="folder of solved notebooks (default: notebooks/)")
    st.add_argument("--out", default=None, help="default: <src>/student")
    st.add_argument("--check", action="store_true", help="only report stale copies (exit 1 if any)")
    return p


def _literal(v: str):
    try:
        return json.loads(v)
    except ValueError:
        return v


def _parse_overrides(cls, pairs):
    import dataclasses

    fields = {f.name: f for f in dataclasses.fields(cls)}
    out = {}
    for kv in pairs:
        if "=" not in kv:
            raise SystemExit(f"--set expects KEY=VALUE, got {kv!r}")
        k, v = kv.split("=", 1)
        if k not in fields:
            raise SystemExit(f"unknown setting {k!r}; known: {', '.join(fields)}")
        default = getattr(cls(), k)
        if isinstance(default, bool):
            out[k] = v.lower() in ("1", "true", "yes")
        elif isinstance(default, int):
            out[k] = int(v)
        elif isinstance(default, float):
            out[k] = float(v)
        elif isinstance(default, tuple) or default is None:
            out[k] = tuple(x for x in v.split(",") if x) if v else None
        else:
            out[k] = v
    return out


def DatasetErrorType():
    from .data.base import DatasetError
    return DatasetError


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.cmd == "data":
        from .data.base import DatasetError

        if args.data_cmd == "summary":
            from .data.registry import data_summary
            try:
                summary = data_summary(args.dataset, root=args.root, split=args.split)
            except DatasetError as e:
                print(f"error: {e}", file=sys.stderr)
                return 2
            if args.json:
                print(json.dumps(summary, indent=2))
            else:
                for k, v in summary.items():
                    print(f"{k}: {v}")
            return 0
        if args.data_cmd == "generate":
            from .data.synthetic import WorldConfig, ensure_dataset
            path = ensure_dataset(args.root, WorldConfig(seed=args.seed, size=args.size,
                                                         photos_per_class=args.photos_per_class),
                                  workers=args.workers)
            print(path)
            return 0
    if args.cmd == "train":
        from .experiment import RunConfig
        method_cfg, train = {}, {}
        for kv in args.set:
            if "=" not in kv:
                raise SystemExit(f"--set expects KEY=VALUE, got {kv!r}")
            k, v = kv.split("=", 1)
            (train if k.startswith("train.") else method_cfg)[k.removeprefix("train.")] = _literal(v)
        cfg = RunConfig(method=args.method, setting=args.setting, dataset=args.dataset, root=args.root,
                        split=args.split, backbone=args.backbone, preset=args.preset, seed=args.seed,
                        device=args.device, method_cfg=method_cfg, train=train)
        import os

        from .train.distributed import run_distributed  # plain run_experiment unless under torchrun
        try:
            metrics = run_distributed(cfg, args.out, resume=args.resume)
        except (DatasetErrorType(), KeyError, TypeError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if os.environ.get("RANK", "0") == "0":
            print(json.dumps({k: v for k, v in metrics.items() if k != "versions"}, indent=2))
        return 0
    if args.cmd == "table":
        from .experiment import train_table
        from .tables import seed_summary
        from .train.loop import _atomic_json
        seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
        per_seed = {}
        for seed in seeds:
            out = args.out if seed == 0 else f"{args.out}/seed{seed}"
            per_seed[seed] = res = train_table(out, args.preset, args.methods.split(",") if args.methods else None,
                                               tuple(args.settings.split(",")), not args.no_ablations,
                                               backbone=args.backbone, seed=seed)
        if len(seeds) > 1:
            _atomic_json({"preset": args.preset, "seeds": seeds, "runs": seed_summary(list(per_seed.values()))},
                         Path(args.out) / "table_seeds.json")
        for name, m in res.items():
            keys = ("mAP@all", "mAP@200", "P@100", "P@200") if "mAP@all" in m else ("Acc@1", "Acc@5", "Acc@10")
            print(f"{name:32s} " + "  ".join(f"{k} {m[k]:.3f}" for k in keys) + f"  ({m['wall_time_s']:.0f} s)")
        return 0
    if args.cmd == "eval":
        from .experiment import evaluate_doodles, evaluate_run
        try:
            metrics = evaluate_doodles(args.run, args.doodles) if args.doodles else evaluate_run(args.run)
        except (FileNotFoundError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(json.dumps(metrics, indent=2))
        return 0
    if args.cmd == "report":
        from .reports import NotebookFailed, run_report
        try:
            results = run_report(args.preset, args.out, args.only, args.dataset, args.backbone)
        except NotebookFailed as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(f"{len(results)} notebook(s) executed; open {args.out}/index.html")
        return 0
    if args.cmd == "student":
        from .teaching import SolutionMarkerError, stale_student_copies, write_student_copies
        try:
            if args.check:
                stale = stale_student_copies(args.src, args.out)
                for n in stale:
                    print(f"stale: {n}")
                print("student copies are current" if not stale else "run `sbirlab student` to refresh them")
                return 1 if stale else 0
            paths = write_student_copies(args.src, args.out)
        except (SolutionMarkerError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"{len(paths)} student notebook(s) in {paths[0].parent if paths else args.out}")
        return 0
    if args.cmd == "pretrain":
        from .pretrain import PretrainConfig, pretrain
        cfg = PretrainConfig(**_parse_overrides(PretrainConfig, args.set))
        card = pretrain(cfg, args.out, resume=not args.no_resume, ship_to=args.ship)
        print(json.dumps(card["final"], indent=2))
        if args.ship:
            from .modelcard import measure_gates, write_model_card
            ship = Path(args.ship)
            gates = None
            if not args.no_gates:
                gates = measure_gates(checkpoint=str(ship), out_dir=str(Path(args.out) / "gates"))
                print(json.dumps(gates, indent=2))
            history = json.loads((Path(args.out) / "history.json").read_text())
            print("model card:", write_model_card(card, gates, history, ship.parent))
        return 0
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
