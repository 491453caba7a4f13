"""Pretrain a tiny CLIP from scratch on the synthetic world (the shipped ``tiny-synthetic`` backbone).

Real CLIP learnt from web photos with captions, and from some drawings, never from the SBIR
benchmarks' sketches. The tiny CLIP does the same in miniature:

* photos of **all** classes (seen and unseen: real CLIP knows the unseen classes too) with templated
  captions naming the class and attribute words ("a photo of a red cup.");
* a share of captioned **clean drawings** ("a drawing of a cup.") from
  :func:`sbirlab.data.synthetic.render_drawing`, a style deliberately different from the SBIR
  sketch renderer: hand-drawn sketches stay out of distribution, which is the domain gap that
  prompt learning then closes;
* optionally, a share of **real human doodles** (Quick, Draw!, Google, CC BY 4.0: the *pretrain*
  part of ``data/real/quickdraw``, never its held-out part and never an SBIR training or test
  sketch), each rendered several times with a random pose, pen width and dropped strokes, and
  captioned "a doodle of a cup." -- as web drawings entered real CLIP's corpus;
* instances drawn with their own seeds, disjoint from every instance of the SBIR datasets.

Loss: the symmetric image-text contrastive loss of CLIP (Radford et al. 2021) with class-aware
targets (UniCL, Yang et al. 2022): several captions in a batch name the same class, and treating
them as negatives would be label noise. Training state is checkpointed atomically and resumable.
"""
from __future__ import annotations

import json
import logging
import math
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .io import atomic_torch_save, versions

log = logging.getLogger(__name__)


@dataclass
class PretrainConfig:
    """Every knob of the pretraining recipe (saved with the checkpoint)."""

    arch: str = "sbirlab-micro"
    seed: int = 0
    size: int = 64
    photos_per_class: int = 600       # unique photo instances per class in the corpus
    drawing_share: float = 0.1        # fraction of the corpus that is clean drawings
    drawing_style: str = "mixed"      # outline | cartoon | mixed (see render_drawing)
    doodle_share: float = 0.2         # fraction of the corpus that is renderings of real doodles
    doodle_dir: str | None = None     # QuickDraw ndjson folder (None = sbirlab's data/real/quickdraw)
    pose_range: float = 1.3           # instance pose spread of the world (see make_instance)
    captions_per_image: int = 3
    samples: int = 400_000            # samples seen (steps = samples / batch_size)
    batch_size: int = 128
    lr: float = 5e-4
    weight_decay: float = 0.1
    warmup: int = 200
    amp: bool = True                  # bf16 autocast on CPU / fp16 on CUDA
    threads: int = 0                  # 0 = torch default
    eval_every: int = 200
    ckpt_every: int = 200
    eval_per_class: int = 20
    workers: int = 2                  # processes rendering the corpus
    classes: tuple[str, ...] | None = None
    mean: tuple[float, ...] = (0.48145466, 0.4578275, 0.40821073)
    std: tuple[float, ...] = (0.26862954, 0.26130258, 0.27577711)


# ---------------------------------------------------------------------------------------------
# Corpus
# ---------------------------------------------------------------------------------------------
_DOODLE_TEMPLATES = ("a doodle of a {c}.", "a quick doodle of a {c}.", "a drawing of a {c}.",
                     "a sketch of a {c}.", "a scribble of a {c}.", "a hand drawn {c}.")


def augment_doodle(strokes, rng: np.random.Generator):
    """A random rendering of a doodle: pose (scale, rotation, shear, shift), point jitter, dropped strokes.

    ``strokes`` are on QuickDraw's 256 canvas; returns ``(strokes, width)`` on the same canvas.
    """
    from .data.doodles import frame_doodle
    from .data.synthetic import CANVAS

    pts = [np.asarray(st, np.float64).reshape(-1, 2) for st in frame_doodle(strokes)]
    if len(pts) > 3:  # people leave details out: drop up to a quarter of the strokes, never the first
        keep = [0] + [k for k in range(1, len(pts)) if rng.random() > 0.15]
        pts = [pts[k] for k in keep]
    a = rng.uniform(-0.2, 0.2)
    sc = rng.uniform(0.75, 1.15)
    sh = rng.normal(0, 0.08)
    A = sc * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) @ np.array([[1.0, sh], [0.0, 1.0]])
    if rng.random() < 0.5:
        A = A @ np.diag([-1.0, 1.0])
    off = CANVAS / 2 + rng.normal(0, 10, 2)
    out = [((p - CANVAS / 2) @ A.T + off + rng.normal(0, 1.0, p.shape)).astype(np.float32) for p in pts]
    return out, float(rng.uniform(2.0, 5.0))


def _render_chunk(args):
    """Render (image, caption strings) for a list of (label, seed, kind) jobs (worker).

    ``kind`` is ``"photo"``, ``"drawing"`` or ``("doodle", strokes)`` (a real doodle's strokes).
    """
    from .data.strokes import rasterize_strokes
    from .data.synthetic import CANVAS, caption, class_text, make_instance, render_drawing, render_photo

    jobs, size, style, n_cap, pose_range = args
    imgs, caps = np.zeros((len(jobs), size, size, 3), np.uint8), []
    for i, (label, seed, kind) in enumerate(jobs):
        rng = np.random.default_rng(seed)
        if isinstance(kind, tuple):  # a real doodle
            strokes, w = augment_doodle(kind[1], rng)
            imgs[i] = np.asarray(rasterize_strokes(strokes, size=size, width=w, canvas=CANVAS))
            caps.append([_DOODLE_TEMPLATES[rng.integers(len(_DOODLE_TEMPLATES))].format(c=class_text(label))
                         for _ in range(n_cap)])
            continue
        inst = make_instance(label, seed, pose_range)
        img = render_photo(inst, size) if kind == "photo" else render_drawing(inst, size, style)
        imgs[i] = np.asarray(img)
        caps.append([caption(inst, kind, rng) for _ in range(n_cap)])
    return imgs, caps


def pretrain_doodles(cfg: PretrainConfig, classes: list[str]) -> list[tuple[str, list]]:
    """The real doodles the corpus may use: ``(world class, strokes)`` of the *pretrain* part only."""
    from .data.doodles import default_doodle_dir, load_doodles

    d = load_doodles(cfg.doodle_dir or default_doodle_dir(), part="pretrain")
    return [(r.label, r.strokes) for r in d if r.label in classes]


def build_corpus(cfg: PretrainConfig, classes: list[str], tokenizer, progress=True):
    """Render the pretraining corpus in memory: uint8 images, class ids, tokenised captions."""
    from .data.synthetic import _seed

    rng = np.random.default_rng(cfg.seed)
    jobs, labels = [], []
    n_draw = int(round(cfg.photos_per_class * cfg.drawing_share / (1 - cfg.drawing_share)))
    for ci, c in enumerate(classes):
        for i in range(cfg.photos_per_class):
            jobs.append((c, _seed("pretrain-photo", cfg.seed, c, i) % 2 ** 31, "photo"))
            labels.append(ci)
        for i in range(n_draw):
            jobs.append((c, _seed("pretrain-drawing", cfg.seed, c, i) % 2 ** 31, "drawing"))
            labels.append(ci)
    if cfg.doodle_share > 0:
        if not 0 < cfg.doodle_share < 1 - cfg.drawing_share:
            raise ValueError(f"doodle_share={cfg.doodle_share} must be in (0, 1 - drawing_share)")
        doodles = pretrain_doodles(cfg, classes)
        if not doodles:
            raise ValueError("doodle_share > 0 but no pretraining doodle of the corpus classes was found")
        # the corpus so far is (1 - doodle_share) of the whole: renderings per doodle to reach the share
        n_doodle = int(round(len(jobs) * cfg.doodle_share / (1 - cfg.doodle_share)))
        for k in range(n_doodle):
            label, strokes = doodles[k % len(doodles)]
            jobs.append((label, _seed("pretrain-doodle", cfg.seed, k) % 2 ** 31, ("doodle", strokes)))
            labels.append(classes.index(label))
    order = rng.permutation(len(jobs))
    jobs = [jobs[i] for i in order]
    labels = np.asarray(labels)[order]
    chunks = [jobs[i:i + 500] for i in range(0, len(jobs), 500)]
    args = [(ch, cfg.size, cfg.drawing_style, cfg.captions_per_image, cfg.pose_range) for ch in chunks]
    t0 = time.time()
    if cfg.workers > 1:
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(cfg.workers) as ex:
            results = list(ex.map(_render_chunk, args))
    else:
        results = [_render_chunk(a) for a in args]
    images = torch.from_numpy(np.concatenate([r[0] for r in results])).permute(0, 3, 1, 2).contiguous()
    caps = [c for r in results for c in r[1]]
    flat = [t for cs in caps for t in cs]
    tokens = tokenizer(flat).view(len(caps), cfg.captions_per_image, -1)
    is_drawing = torch.tensor([j[2] != "photo" for j in jobs])
    n_doodles = sum(isinstance(j[2], tuple) for j in jobs)
    log.info("corpus: %d images (%d drawings, %d of them doodle renderings) rendered in %.0f s", len(jobs),
             int(is_drawing.sum()), n_doodles, time.time() - t0)
    return images, torch.from_numpy(labels), tokens, is_drawing


# ---------------------------------------------------------------------------------------------
# Evaluation: zero-shot classification of photos and sketches, fresh held-out instances
# ---------------------------------------------------------------------------------------------
def heldout_set(classes, per_class, size, seed, kinds=("photo", "sketch"), pose_range: float = 1.0):
    """Fresh instances (seeds disjoint from corpus and datasets): photos and SBIR-style sketches."""
    from .data.synthetic import _seed, make_instance, render_photo, render_sketch

    out = {k: [] for k in kinds}
    labels = []
    for ci, c in enumerate(classes):
        for i in range(per_class):
            inst = make_instance(c, _seed("heldout", seed, c, i) % 2 ** 31, pose_range)
            if "photo" in kinds:
                out["photo"].append(np.asarray(render_photo(inst, size)))
            if "sketch" in kinds:
                out["sketch"].append(np.asarray(render_sketch(inst, i, seed=1, size=size)))
            labels.append(ci)
    t = {k: torch.from_numpy(np.stack(v)).permute(0, 3, 1, 2).contiguous() for k, v in out.items()}
    return t, torch.tensor(labels)


def heldout_doodles(cfg: PretrainConfig, classes: list[str]):
    """The *held-out* real doodles (never in the corpus) as ``(uint8 [N, 3, H, W], labels)``."""
    from .data.doodles import default_doodle_dir, doodle_images, load_doodles

    d = [r for r in load_doodles(cfg.doodle_dir or default_doodle_dir(), part="heldout") if r.label in classes]
    imgs = doodle_images(d, cfg.size)
    return imgs, torch.tensor([classes.index(r.label) for r in d])


def normalize(images_u8: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 ``[B, 3, H, W]`` -> normalised float."""
    x = images_u8.float().div_(255)
    m = torch.tensor(mean, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


@torch.no_grad()
def class_text_features(model, tokenizer, classes, templates=("a photo of a {}.",), device="cpu"):
    """L2-normalised class text embeddings averaged over ``templates`` (prompt ensembling)."""
    from .data.synthetic import class_text

    feats = []
    for t in templates:
        tok = tokenizer([t.format(class_text(c)) for c in classes]).to(device)
        feats.append(F.normalize(model.encode_text(tok).float(), dim=-1))
    return F.normalize(torch.stack(feats).mean(0), dim=-1)


@torch.no_grad()
def encode_images(model, images_u8, mean, std, batch=256, device="cpu"):
    out = []
    for i in range(0, len(images_u8), batch):
        x = normalize(images_u8[i:i + batch].to(device), mean, std)
        out.append(F.normalize(model.encode_image(x).float(), dim=-1).cpu())
    return torch.cat(out)


@torch.no_grad()
def zero_shot_accuracy(model, tokenizer, classes, images_u8, labels, mean, std, templates=("a photo of a {}.",),
                       subset=None, device="cpu") -> float:
    """Top-1 zero-shot accuracy over all ``classes``; ``subset`` restricts the *images* to some classes."""
    model.eval()
    T = class_text_features(model, tokenizer, classes, templates, device)
    f = encode_images(model, images_u8, mean, std, device=device)
    pred = (f @ T.T.cpu()).argmax(1)
    keep = torch.ones(len(labels), dtype=torch.bool) if subset is None else torch.isin(labels, torch.tensor(subset))
    return float((pred[keep] == labels[keep]).float().mean())


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------
def _augment(x_u8: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random flip and shift by up to 1/16 of the side (cheap, batch-wise)."""
    B, _, H, W = x_u8.shape
    if torch.rand((), generator=gen) < 0.5:
        x_u8 = x_u8.flip(3)
    p = max(1, H // 16)
    pad = F.pad(x_u8, (p, p, p, p), mode="replicate") if x_u8.dtype.is_floating_point else \
        F.pad(x_u8.float(), (p, p, p, p), mode="replicate")
    dx, dy = (int(v) for v in torch.randint(0, 2 * p + 1, (2,), generator=gen))
    return pad[:, :, dy:dy + H, dx:dx + W]



def pretrain(cfg: PretrainConfig, out_dir: str | Path, resume: bool = True, ship_to: str | Path | None = None,
             progress: bool = True) -> dict:
    """Run the pretraining recipe; returns the model card dict. Resumes from ``out_dir/state.pt``."""
    import open_clip
    from tqdm.auto import tqdm

    import sbirlab  # noqa: F401  (registers the tiny configs)
    from .data.categories import all_categories
    from .data.synthetic import zero_shot_split

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    classes = sorted(cfg.classes) if cfg.classes else all_categories()
    split = zero_shot_split(classes)
    unseen_ids = [classes.index(c) for c in split["unseen"]]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = open_clip.create_model(cfg.arch, pretrained=None).to(device)
    tokenizer = open_clip.get_tokenizer(cfg.arch)
    images, labels, tokens, is_drawing = build_corpus(cfg, classes, tokenizer, progress)
    held, held_labels = heldout_set(classes, cfg.eval_per_class, cfg.size, seed=cfg.seed + 1,
                                    pose_range=cfg.pose_range)
    held_doodles = heldout_doodles(cfg, classes) if cfg.doodle_share > 0 else None

    steps = cfg.samples // cfg.batch_size
    if steps < 1:
        raise ValueError(f"samples={cfg.samples} is less than one batch (batch_size={cfg.batch_size})")
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / cfg.warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    gen = torch.Generator().manual_seed(cfg.seed)
    history, step, elapsed = [], 0, 0.0
    state_path = out_dir / "state.pt"
    if resume and state_path.exists():
        st = torch.load(state_path, map_location=device, weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        sched.load_state_dict(st["sched"])
        gen.set_state(st["gen"])
        torch.set_rng_state(st["torch_rng"])
        step, history, elapsed = st["step"], st["history"], st["elapsed"]
        log.info("resumed pretraining at step %d", step)

    amp_dtype = torch.bfloat16 if device == "cpu" else torch.float16
    N = len(images)
    bar = tqdm(total=steps, initial=step, desc="pretrain", disable=not progress)
    t_last = time.time()
    while step < steps:
        model.train()
        idx = torch.randint(0, N, (cfg.batch_size,), generator=gen)
        x = normalize(_augment(images[idx], gen).to(device), cfg.mean, cfg.std)
        cap = torch.randint(0, cfg.captions_per_image, (cfg.batch_size,), generator=gen)
        txt = tokens[idx, cap].to(device)
        y = labels[idx].to(device)
        with torch.autocast(device_type=device, dtype=amp_dtype, enabled=cfg.amp):
            fi = F.normalize(model.encode_image(x), dim=-1)
            ft = F.normalize(model.encode_text(txt), dim=-1)
            logits = model.logit_scale.exp() * fi.float() @ ft.float().T
        target = (y[:, None] == y[None, :]).float()
        target = target / target.sum(1, keepdim=True)
        loss = 0.5 * (torch.sum(-target * F.log_softmax(logits, 1), 1).mean()
                      + torch.sum(-target * F.log_softmax(logits.T, 1), 1).mean())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        step += 1
        bar.update(1)
        now = time.time()
        elapsed += now - t_last
        t_last = now
        rec = {"step": step, "samples": step * cfg.batch_size, "loss": loss.item(), "seconds": round(elapsed, 1)}
        if step % cfg.eval_every == 0 or step == steps:
            rec["photo_acc_all"] = zero_shot_accuracy(model, tokenizer, classes, held["photo"], held_labels, cfg.mean, cfg.std, device=device)
            rec["sketch_acc_all"] = zero_shot_accuracy(model, tokenizer, classes, held["sketch"], held_labels, cfg.mean, cfg.std, device=device)
            if held_doodles is not None:  # real doodles of the held-out part, never in the corpus
                rec["doodle_acc_all"] = zero_shot_accuracy(model, tokenizer, classes, held_doodles[0], held_doodles[1],
                                                           cfg.mean, cfg.std, device=device)
            bar.set_postfix(loss=f"{float(loss):.3f}", photo=f"{rec['photo_acc_all']:.2f}", sketch=f"{rec['sketch_acc_all']:.2f}")
            log.info("step %d loss %.3f photo %.3f sketch %.3f", step, float(loss), rec["photo_acc_all"], rec["sketch_acc_all"])
            t_last = time.time()
        history.append(rec)
        if step % cfg.ckpt_every == 0 or step == steps:
            atomic_torch_save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                               "gen": gen.get_state(), "torch_rng": torch.get_rng_state(), "step": step,
                               "history": history, "elapsed": elapsed, "config": asdict(cfg)}, state_path)
            t_last = time.time()
    bar.close()
    model.eval()
    card = {
        "name": "tiny-synthetic", "arch": cfg.arch, "config": asdict(cfg),
        "parameters": sum(p.numel() for p in model.parameters()),
        "classes": classes, "split": split,
        "corpus": {"images": N, "drawings": int(is_drawing.sum()), "photos": int((~is_drawing).sum())},
        "samples_seen": step * cfg.batch_size, "wall_time_s": round(elapsed, 1),
        "machine": {"cpu_threads": torch.get_num_threads(), "device": device, "platform": platform.platform()},
        "versions": versions(),
        "final": {k: v for k, v in history[-1].items() if k != "step"},
    }
    (out_dir / "history.json").write_text(json.dumps(history))
    torch.save(model.state_dict(), out_dir / "model_fp32.pt")
    if ship_to:
        from .models.backbone import save_tiny_checkpoint
        save_tiny_checkpoint(model, Path(ship_to), cfg.arch, card, list(cfg.mean), list(cfg.std))
    return card
