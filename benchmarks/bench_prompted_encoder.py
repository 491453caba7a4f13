"""Benchmark: sbirlab's prompted image encoder vs open_clip's own forward on the same number of tokens.

VPT (Jia et al., ECCV 2022) prompts add K tokens to every image; those tokens cost compute whatever
the implementation. The question here is only whether *our wrapper* adds overhead, so the reference
runs open_clip's own code on a sequence of the same length:

    reference(images) = open_clip ``visual._embeds``            (conv1 + CLS + pos + patch_dropout + ln_pre)
                        -> cat K extra tokens                    (what any prompt method must do)
                        -> ``visual.transformer`` (its own block loop, N + 1 + K tokens)
                        -> ``visual._pool`` on the first N + 1 tokens -> ``@ visual.proj``

    ours(images)      = ``PromptedVisionEncoder(visual)(images, prompts=P)``         (mode "shallow")
                        ``PromptedVisionEncoder(visual)(images, deep_prompts=D)``    (mode "deep": VPT-deep,
                        the K prompt positions replaced before each of the L blocks)

For "shallow" both compute the same function (checked before timing, with the reference's extra tokens
set to ``ln_pre(P)``). For "deep" the reference has no per-layer replacement: the ratio then includes
the inherent cost of VPT-deep's L concatenations, which is what a user pays over a plain forward.
``encode_image`` (N + 1 tokens, no prompts) is timed too, to show the cost of the K tokens themselves.

Train step = forward + ``backward`` of a scalar loss with the backbone frozen
(``requires_grad_(False)``): ours back-propagates to the prompt parameters, the reference to a leaf
tensor holding its K extra tokens, so both run the full backward through every block.

Each measurement is the median over repeats; ours and the reference alternate within every repeat so
background load hits both alike. Target: ours / reference <= 1.10.

Usage::

    python benchmarks/bench_prompted_encoder.py            # full run, lead runs it on an idle machine
    python benchmarks/bench_prompted_encoder.py --small    # quick check (tiny batches, few repeats)

Writes ``benchmarks/results/prompted_encoder.json`` (``prompted_encoder_small.json`` with ``--small``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

TARGET_RATIO = 1.10
RESULTS_DIR = Path(__file__).resolve().parent / "results"

# model name -> (batch full, batch small)
MODELS = {"sbirlab-micro": (64, 8), "ViT-B-32": (16, 1)}


def _timeit(fn, sync) -> float:
    t0 = time.perf_counter()
    fn()
    sync()
    return (time.perf_counter() - t0) * 1000.0


def bench_model(name: str, batch: int, ks, repeats: int, warmup: int, device):
    import torch
    from torch import nn

    import open_clip
    import sbirlab  # noqa: F401
    from sbirlab.models.prompts import PromptedVisionEncoder

    torch.manual_seed(0)
    model = open_clip.create_model(name, pretrained=None, device=device).eval()
    model.requires_grad_(False)
    visual = model.visual
    enc = PromptedVisionEncoder(visual)
    size = visual.image_size[0] if isinstance(visual.image_size, (tuple, list)) else visual.image_size
    images = torch.randn(batch, 3, size, size, device=device)
    D, L = enc.width, enc.num_layers
    sync = (lambda: torch.cuda.synchronize()) if device.type == "cuda" else (lambda: None)
    rows = []

    def reference(extra: torch.Tensor) -> torch.Tensor:
        x = visual._embeds(images)  # [B, 1+N, D]
        n = x.shape[1]
        x = torch.cat([x, extra.expand(x.shape[0], -1, -1)], dim=1)  # [B, 1+N+K, D]
        x = visual.transformer(x)
        pooled, _ = visual._pool(x[:, :n])
        return pooled @ visual.proj

    for K in ks:
        shallow = nn.Parameter(0.02 * torch.randn(K, D, device=device))
        deep = nn.Parameter(0.02 * torch.randn(L, K, D, device=device))
        ref_extra = nn.Parameter(torch.zeros(1, K, D, device=device))

        with torch.no_grad():  # the shallow comparison computes the same function
            ref_extra.copy_(visual.ln_pre(shallow).unsqueeze(0))
            diff = (enc(images, prompts=shallow) - reference(ref_extra)).abs().max().item()
        if diff > 1e-4:
            raise RuntimeError(f"{name} K={K}: ours and the reference differ by {diff}")

        for mode in ("shallow", "deep"):
            def ours_fwd(mode=mode):
                return enc(images, prompts=shallow) if mode == "shallow" else enc(images, deep_prompts=deep)

            for phase in ("inference", "train_step"):
                if phase == "inference":
                    def run_ours():
                        with torch.no_grad():
                            ours_fwd()

                    def run_ref():
                        with torch.no_grad():
                            reference(ref_extra)

                    def run_plain():
                        with torch.no_grad():
                            model.encode_image(images)
                else:
                    def run_ours():
                        ours_fwd().square().mean().backward()
                        shallow.grad = deep.grad = None

                    def run_ref():
                        reference(ref_extra).square().mean().backward()
                        ref_extra.grad = None

                    run_plain = None  # no trainable leaf in a frozen plain forward
                times = {"ours": [], "ref": [], "plain": []}
                for i in range(warmup + repeats):
                    order = [("ours", run_ours), ("ref", run_ref)]
                    if i % 2:
                        order.reverse()
                    if run_plain is not None:
                        order.append(("plain", run_plain))
                    for key, fn in order:
                        t = _timeit(fn, sync)
                        if i >= warmup:
                            times[key].append(t)
                ours_ms = statistics.median(times["ours"])
                ref_ms = statistics.median(times["ref"])
                row = {
                    "model": name, "image_size": size, "batch": batch, "tokens": 1 + enc.grid_size[0] *
                    enc.grid_size[1] + K, "K": K, "mode": mode, "phase": phase,
                    "ours_ms": round(ours_ms, 3), "ref_same_tokens_ms": round(ref_ms, 3),
                    "encode_image_ms": round(statistics.median(times["plain"]), 3) if times["plain"] else None,
                    "ratio": round(ours_ms / ref_ms, 4), "ok": ours_ms / ref_ms <= TARGET_RATIO,
                    "repeats": repeats,
                }
                rows.append(row)
                print(f"{name:14s} K={K} {mode:7s} {phase:10s} ours {ours_ms:9.2f} ms  ref {ref_ms:9.2f} ms  "
                      f"ratio {row['ratio']:.3f}" + ("" if row["ok"] else "  ABOVE TARGET"), flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="quick check: tiny batches, few repeats")
    parser.add_argument("--models", nargs="+", default=list(MODELS), help=f"subset of {list(MODELS)}")
    parser.add_argument("--ks", nargs="+", type=int, default=[3, 8], help="prompt counts K")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats (default 15, small 3)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed repeats (default 3, small 1)")
    parser.add_argument("--batch", type=int, default=None, help="override the batch size of every model")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--out", default=None, help="output JSON path")
    args = parser.parse_args(argv)

    import torch

    import open_clip
    import sbirlab
    from sbirlab.models.backbone import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    repeats = args.repeats or (3 if args.small else 15)
    warmup = args.warmup if args.warmup is not None else (1 if args.small else 3)
    rows = []
    for name in args.models:
        if name not in MODELS:
            parser.error(f"unknown model {name}; choose from {list(MODELS)}")
        batch = args.batch or MODELS[name][1 if args.small else 0]
        rows += bench_model(name, batch, args.ks, repeats, warmup, device)

    out = Path(args.out) if args.out else RESULTS_DIR / ("prompted_encoder_small.json" if args.small
                                                          else "prompted_encoder.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "prompted_encoder",
        "target_ratio": TARGET_RATIO,
        "all_ok": all(r["ok"] for r in rows),
        "reference": "open_clip visual._embeds + K extra tokens + visual.transformer + visual._pool "
                     "(same token count as ours); encode_image_ms = plain encode_image without the K tokens",
        "meta": {
            "small": args.small, "device": str(device), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "open_clip": open_clip.__version__, "sbirlab": sbirlab.__version__,
            "python": sys.version.split()[0], "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        },
        "results": rows,
    }
    from sbirlab.io import atomic_write_text
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {out} (all_ok={result['all_ok']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
