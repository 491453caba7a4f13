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
    tr = sub.add_parser("train", help="train a method and evaluate it on the test classes (data-parallel "
                                      "under torchrun: torchrun --nproc_per_node=N -m sbirlab train ...)")
    tr.add_argument("--config", default=None, help="a RunConfig JSON file (e.g. a run's config.json); flags override it")
    tr.add_argument("--method", default=None, help="registered method name (clip-at, b-ip, ...; default clip-at)")
    tr.add_argument("--setting", default=None, choices=["zs", "gzs", "fg"],
                    help="zs: unseen classes; gzs: generalised (trains as zs, tests on unseen + 20%% seen); fg: instance level")
    tr.add_argument("--dataset", default=None, help="synthetic (default), sketchy, tuberlin, quickdraw, sketchy-fg")
    tr.add_argument("--root", default=None)
    tr.add_argument("--split", default=None)
    tr.add_argument("--backbone", default=None, help="tiny-synthetic (default), ViT-B-32:openai, sbirlab-nano, ...")
    tr.add_argument("--preset", default=None, choices=["ci", "cpu", "paper"], help="default cpu")
    tr.add_argument("--seed", type=int, default=None)
    tr.add_argument("--device", default=None, help="auto | cpu | cuda (under torchrun: this rank's GPU)")
    tr.add_argument("--out", required=True, help="run folder (config.json, metrics.json, checkpoints)")
    tr.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    tr.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="method options (lambda_cls=0), train.KEY=VALUE (train.epochs=3) or world.KEY=VALUE "
                         "(values parsed as JSON when possible)")
    tr.add_argument("--no-progress", action="store_true")

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


def run_config_from_args(args: argparse.Namespace):
    """The :class:`~sbirlab.experiment.RunConfig` of ``sbirlab train`` arguments: ``--config`` (a
    run's ``config.json``), then the flags, then ``--set`` (bare keys are method options, ``train.`` and
    ``world.`` keys go to those groups). Unknown keys fail here, before any process-group work."""
    from .experiment import RunConfig

    d: dict = {}
    if args.config:
        d = json.loads(Path(args.config).read_text())
        d.pop("method_resolved", None)  # a record only; the options come from method_cfg + preset
        train = d.get("train", {})  # a run's config.json holds the resolved train config
        d["train"] = {k: v for k, v in train.items() if k not in ("seed", "device")}
    for name in ("method", "setting", "dataset", "root", "split", "backbone", "preset", "seed", "device"):
        v = getattr(args, name)
        if v is not None:
            d[name] = v
    for kv in args.set:
        key, eq, val = kv.partition("=")
        group, dot, field = key.partition(".")
        if not dot:  # a bare KEY is a method option, as in ``sbirlab train --set lambda_cls=0``
            group, field = "method_cfg", key
        if not eq or not field or group not in ("train", "method_cfg", "world"):
            raise SystemExit(f"--set expects KEY=VALUE (a method option), train.KEY=VALUE or world.KEY=VALUE, "
                             f"got {kv!r}")
        d.setdefault(group, {})[field] = _literal(val)
    cfg = RunConfig.from_dict(d)
    cfg.resolved_train()
    return cfg


def _parse_overrides(cls, pairs):
    from .config import check_keys

    out = {}
    for kv in pairs:
        if "=" not in kv:
            raise SystemExit(f"--set expects KEY=VALUE, got {kv!r}")
        k, v = kv.split("=", 1)
        try:
            check_keys(cls, {k: v}, "--set key")
        except TypeError as e:
            raise SystemExit(str(e)) from None
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
    import os

    args = _parser().parse_args(argv)
    # under torchrun only rank 0 logs at INFO level (the others would repeat every line)
    logging.basicConfig(level=logging.INFO if os.environ.get("RANK", "0") == "0" else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
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
        import os

        from .experiment import run_distributed  # plain run_experiment unless under torchrun
        try:
            cfg = run_config_from_args(args)
            metrics = run_distributed(cfg, args.out, resume=args.resume, progress=not args.no_progress)
        except (DatasetErrorType(), KeyError, TypeError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if os.environ.get("RANK", "0") == "0":
            print(json.dumps({k: v for k, v in metrics.items() if k != "versions"}, indent=2))
        return 0
    if args.cmd == "table":
        from .experiment import train_table
        from .tables import seed_summary
        from .io import atomic_write_json
        seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
        per_seed = {}
        for seed in seeds:
            out = args.out if seed == 0 else f"{args.out}/seed{seed}"
            per_seed[seed] = res = train_table(out, args.preset, args.methods.split(",") if args.methods else None,
                                               tuple(args.settings.split(",")), not args.no_ablations,
                                               backbone=args.backbone, seed=seed)
        if len(seeds) > 1:
            atomic_write_json({"preset": args.preset, "seeds": seeds, "runs": seed_summary(list(per_seed.values()))},
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
