"""The tiny CLIP's gates and model card: is the shipped foundation model good enough to teach with?

The backbone issue sets five gates, all on the **unseen** classes of the default zero-shot split of the
synthetic world (fresh items: the SBIR dataset's test partition, never seen in pretraining):

1. photo zero-shot classification over all classes >= 85%;
2. sketch zero-shot classification clearly above chance (target >= 30%) yet well below photos;
3. frozen sketch-to-photo mAP@all >= 0.30;
4. a few minutes of deep visual prompt learning on seen classes (triplet + classification, backbone
   frozen) reaches mAP@all >= 0.50 and >= frozen + 0.15;
5. full fine-tuning of the image encoder with the same data and budget ends below prompt learning.

:func:`measure_gates` measures them with sbirlab's own methods and training loop;
:func:`write_model_card` writes ``MODEL_CARD.md`` + ``tiny-synthetic.json`` + the pretraining curve.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

log = logging.getLogger(__name__)

GATE_TEXT = {
    "photo_zs_acc": ("photo zero-shot accuracy (unseen photos, all classes)", ">= 0.85"),
    "sketch_zs_acc": ("sketch zero-shot accuracy (unseen sketches, all classes)", ">= 0.30 and well below photos"),
    "frozen_map": ("frozen sketch->photo mAP@all (unseen)", ">= 0.30"),
    "prompt_map": ("deep visual prompts (B-Deep + L_cls), mAP@all (unseen)", ">= 0.50 and >= frozen + 0.15"),
    "ft_map": ("full fine-tuning (B-FT + L_cls), same data and budget, mAP@all (unseen)", "< prompt learning"),
}


@torch.no_grad()
def zero_shot_classification(backbone, items, classes, template="a photo of a {}.", batch_size=256) -> float:
    """Top-1 accuracy of classifying ``items`` among ``classes`` by the frozen text encoder."""
    from .models.registry import build_method
    from .train.data import ImageLoader
    from .train.loop import encode_items

    m = build_method("frozen", backbone, "zs", classnames=classes)
    text = m.frozen_text_features(classes, template)
    loader = ImageLoader.for_backbone(backbone, cache=False)
    feats = encode_items(m, items, items[0].modality if items else "photo", loader, batch_size, backbone.device)
    pred = (feats @ text.cpu().T).argmax(1)
    y = torch.tensor([classes.index(i.label) for i in items])
    return float((pred == y).float().mean())


def measure_gates(backbone_spec: str = "tiny-synthetic", preset: str = "cpu", out_dir: str | Path | None = None,
                  seed: int = 0, progress: bool = False, checkpoint: str | None = None) -> dict:
    """Measure the five gates (see module docstring); returns a flat dict of numbers and pass flags."""
    from .experiment import RunConfig, load_data, run_experiment
    from .models.backbone import load_backbone

    bb = load_backbone(backbone_spec, checkpoint=checkpoint)
    index, parts = load_data(RunConfig(preset=preset))
    classes = list(index.classes)
    res = {"n_classes": len(classes), "n_unseen": len(parts.split.unseen), "chance": 1.0 / len(classes)}
    res["photo_zs_acc"] = zero_shot_classification(bb, parts.test_gallery, classes)
    res["sketch_zs_acc"] = zero_shot_classification(bb, parts.test_queries, classes)
    res["sketch_zs_acc_drawing_template"] = zero_shot_classification(bb, parts.test_queries, classes,
                                                                     "a drawing of a {}.")
    runs = {}
    for name, method, mcfg in (("frozen", "frozen", {}), ("prompt", "b-deep", {"lambda_cls": 0.5}),
                               ("ft", "b-ft", {"lambda_cls": 0.5})):
        od = Path(out_dir) / name if out_dir else None
        runs[name] = run_experiment(RunConfig(method=method, preset=preset, seed=seed, backbone=backbone_spec,
                                              method_cfg=mcfg), od, progress=progress, backbone=bb)
        res[f"{name}_map"] = runs[name]["mAP@all"]
        res[f"{name}_wall_time_s"] = runs[name]["wall_time_s"]
    res["pass"] = {
        "photo_zs_acc": res["photo_zs_acc"] >= 0.85,
        "sketch_zs_acc": 0.30 <= res["sketch_zs_acc"] <= res["photo_zs_acc"] - 0.15,
        "frozen_map": res["frozen_map"] >= 0.30,
        "prompt_map": res["prompt_map"] >= 0.50 and res["prompt_map"] >= res["frozen_map"] + 0.15,
        "ft_map": res["ft_map"] < res["prompt_map"],
    }
    res["preset"] = preset
    return res


def plot_curve(history: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    s = [h["samples"] / 1000 for h in history]
    ax[0].plot(s, [h["loss"] for h in history], lw=0.6)
    ax[0].set(xlabel="samples seen (k)", ylabel="contrastive loss", title="pretraining loss")
    ev = [h for h in history if "photo_acc_all" in h]
    ax[1].plot([h["samples"] / 1000 for h in ev], [h["photo_acc_all"] for h in ev], label="photos")
    ax[1].plot([h["samples"] / 1000 for h in ev], [h["sketch_acc_all"] for h in ev], label="SBIR sketches")
    ax[1].set(xlabel="samples seen (k)", ylabel="zero-shot accuracy", title="held-out, all classes", ylim=(0, 1))
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_model_card(card: dict, gates: dict | None, history: list[dict], out_dir: str | Path) -> Path:
    """Write ``MODEL_CARD.md``, ``tiny-synthetic.json`` and ``pretraining_curve.png`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plot_curve(history, out / "pretraining_curve.png")
    (out / "tiny-synthetic.json").write_text(json.dumps({"card": card, "gates": gates}, indent=1, default=str))
    c = card["config"]
    lines = [
        "# Model card: `tiny-synthetic`, the tiny CLIP shipped with sbirlab", "",
        "A CLIP in miniature (open_clip architecture `%s`, %.1fM parameters, %d px input) pretrained **from scratch**"
        " by `sbirlab pretrain` on sbirlab's synthetic world, so that every notebook runs offline on a CPU." % (
            card["arch"], card["parameters"] / 1e6, c["size"]), "",
        "## Data", "",
        f"- {card['corpus']['photos']:,} captioned photos of **all** {len(card['classes'])} classes (seen and unseen:"
        " real CLIP knows the unseen classes too), captions from templates naming the class and its colour;",
        f"- {card['corpus']['drawings']:,} captioned **clean drawings** (`render_drawing`, style `{c['drawing_style']}`:"
        " exact outlines / clip art, a style different from the SBIR sketches), as real CLIP saw drawings on the web;",
        *([f"- a share of {c.get('doodle_share', 0):.0%} of the corpus (counted with the drawings above) are random"
           " renderings (pose, pen width, dropped strokes) of the *pretrain* part of real Quick, Draw! doodles"
           " (Google LLC, CC BY 4.0; `data/real/quickdraw/`), captioned \"a doodle of a cup.\"; the *held-out*"
           " part is never trained on;"] if c.get("doodle_share") else []),
        "- never an SBIR sketch; instance seeds disjoint from the SBIR datasets"
        + (f"; instance poses {c['pose_range']}x wider than world v1's." if c.get("pose_range", 1.0) != 1.0 else "."), "",
        "## Training", "",
        f"- class-aware contrastive loss (CLIP + UniCL targets), AdamW lr {c['lr']}, batch {c['batch_size']},"
        f" warm-up {c['warmup']} steps then cosine, bf16 autocast on CPU;",
        f"- samples seen: {card['samples_seen']:,}; wall time: {card['wall_time_s'] / 60:.1f} min"
        f" ({card['machine']['cpu_threads']} CPU threads, {card['machine']['device']});",
        f"- versions: {card['versions']}.", "",
        "![pretraining curve](pretraining_curve.png)", "",
        f"Final held-out zero-shot accuracy (all {len(card['classes'])} classes, fresh instances): photos "
        f"{card['final'].get('photo_acc_all', float('nan')):.3f}, SBIR-style sketches "
        f"{card['final'].get('sketch_acc_all', float('nan')):.3f}"
        + (f", held-out real doodles {card['final']['doodle_acc_all']:.3f}" if "doodle_acc_all" in card["final"] else "")
        + ".", "",
    ]
    if gates:
        lines += ["## Gates (unseen classes of the default zero-shot split, `%s` preset)" % gates["preset"], "",
                  "| gate | target | measured | pass |", "|---|---|---|---|"]
        for k, (desc, target) in GATE_TEXT.items():
            lines.append(f"| {desc} | {target} | {gates[k]:.3f} | {'yes' if gates['pass'][k] else '**no**'} |")
        lines += ["", f"Chance level: {gates['chance']:.3f} ({gates['n_classes']} classes). Sketch accuracy with the"
                  f" template 'a drawing of a {{}}.': {gates['sketch_zs_acc_drawing_template']:.3f}.", ""]
    lines += ["## Use", "", "```python", "from sbirlab.models.backbone import load_backbone",
              'bb = load_backbone("tiny-synthetic")  # model, preprocess, tokenizer', "```", "",
              "Reproduce: `sbirlab pretrain --ship data/checkpoints/tiny-synthetic.pt` (same seed, same recipe).", ""]
    (out / "MODEL_CARD.md").write_text("\n".join(lines))
    return out / "MODEL_CARD.md"
