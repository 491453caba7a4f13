"""SpLIP: bi-directional multimodal prompt sharing for every flavour of ZS-SBIR.

Singha, Jha, Gupta, Singla, Banerjee. *Elevating All Zero-Shot Sketch-Based Image Retrieval Through
Multimodal Prompt Learning.* ECCV 2024, arXiv 2407.04207 (no official code). Implemented as docs/methods.md
§6 specifies, on a frozen open_clip CLIP; trainable: the three mapping blocks, the image encoder's
LayerNorms and the jigsaw head.

**Bi-directional prompt sharing**, with modality-specific templates ("a photo of a {class}." for
photos, "a sketch of a {class}." for sketches):

* **Vision -> text** (``B_t``, ``vision_to_text``): a 2-layer MLP (DECISION) maps the mean patch
  embedding of the image (conv1 + positional embedding, before the transformer) to ``m = 4`` text
  prompt tokens, inserted after the start token and re-injected before every text layer (deep).
* **Text -> vision, static** (``B_v``, ``text_to_vision``): a 2-layer MLP maps the word embeddings of
  the template's words ("a", "photo", "of", "a": four tokens) to four visual tokens, used at every
  vision layer.
* **Text -> vision, layer-wise** (``B_vt``, ``layerwise``): a 2-layer MLP maps the output of text layer
  ``l``, pooled over the seen-class prompts (DECISION: the EOT token), to ``n = 2`` visual tokens for
  vision layer ``l`` (text layer ``round(l (L_t - 1) / (L_v - 1))`` when the depths differ).
* Vision input per layer: ``[CLS, patches, 4 static, 2 layer-wise]`` (layer 0 through ``ln_pre``; the
  order of prompt tokens is immaterial, see :mod:`sbirlab.models.prompts`).

**Losses** ``L = L_trip + alpha L_class + beta L_cjs`` (DECISION alpha = 1, beta = 0.5:
``lambda_cls``, ``lambda_cjs``):

* **Adaptive-margin triplet**: ``mu(c+, c-) = cos(T_c+, T_c-)`` of the frozen text embeddings of
  "a photo of a {class}." (semantically close classes get a larger margin; ``adaptive_margin=False``
  uses the fixed ``margin``); FG (``c+ = c-``): DECISION ``mu = 0.2`` fixed (``margin``). DECISION:
  clamped at 0 (OpenAI CLIP's class texts are all positively correlated, ~0.6-0.95, so the clamp never
  acts there; the tiny CLIP's reach cos -0.5, and a negative margin would only ask the negative to be
  no closer than the positive by more than ``|mu|``).
* **L_class**: cross-entropy of the sketch and photo embeddings against the *prompted* class text
  embeddings of the seen classes (modality template, ``B_t`` context) at CLIP's temperature.
* **Conditional cross-modal jigsaw** (``L_cjs``): the anchor sketch is cut on a 3 x 3 grid and shuffled
  by permutation ``pi_k`` of a fixed set (DECISION: 30 permutations of maximal minimum Hamming distance,
  chosen greedily as Noroozi and Favaro's jigsaw does; :func:`jigsaw_permutations`); a 2-layer
  transformer head (DECISION: width 64, 2 attention heads, a CLS token, learned tile-position and
  image embeddings) predicts ``k`` from ``[F(x), F(s')]`` for ``x`` in ``{s, p+, p-}``, where ``F``
  is the 3 x 3 average pooling of the encoder's patch tokens (one token per tile, projected to 64).
  ``L_cjs = l(s) + l(p+) + max(0, 1 + l(p+) - l(p-))`` (our reconstruction: the positive photo must
  explain the shuffled sketch better than the negative).

DECISIONS of sbirlab (cost on a CPU, determinism), and why:

* **Image conditioning of the text side, at two granularities.** Conditioning every class prompt on
  every image (CoCoOp-style) costs ``B x C`` text passes per step, ~10x the image encoder on the tiny
  CLIP. sbirlab runs (a) **per image** one text pass of a *pooled* seen-class prompt
  ``[SOT, B_t(x), "a photo of a", mean seen-class word embedding, ".", EOT]``: its layer-``l`` EOT
  output stands for the mean over the seen-class prompts' EOT outputs and feeds ``B_vt`` (so every
  image's visual prompts depend on the image alone: identical in training and at test); and (b) for
  ``L_class``, **per modality and batch**, the ``C`` class prompts with ``B_t`` applied to the batch's
  mean patch statistic of that modality.
* **Sketch and photo share the mapping blocks** (the template words and the image make the prompts
  modality-specific); the text encoder stays frozen (it defines the adaptive margins).
* **Jigsaw cost.** ``F(s')`` of the shuffled sketch is computed without gradient (the head and the
  unshuffled images' features learn); images whose side is not a multiple of 3 are padded (edge
  replicate) to the next multiple for the shuffle and cropped back (no resampling blur).
* **Negatives come from the batch** (as in :mod:`sbirlab.models.methods.dp_clip`): a uniformly drawn
  valid photo among the batch's positives (``negatives="random"``), or the closest (``"batch-hard"``,
  e.g. the ``ci`` preset); the sampled ``photo_neg`` is encoded only for anchors without one.
* **Learning rates** 1e-3 (mapping blocks, head) and 1e-4 (LayerNorms), as sbirlab's CLIP-AT.
"""
from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..losses import classification_loss, pairwise_cosine_distance, patch_shuffle, triplet_loss
from ..prompts import build_prompt_tokens
from .base import MethodConfig, SBIRMethod, select_negatives

__all__ = ["SpLIP", "SpLIPConfig", "jigsaw_permutations", "JigsawHead", "ABLATIONS"]

#: the ablation rows of the results table (:func:`sbirlab.experiment.table_configs`), by setting
ABLATIONS: dict[str, tuple[dict, ...]] = {
    "zs": ({"vision_to_text": False}, {"text_to_vision": False}, {"layerwise": False},
           {"adaptive_margin": False}, {"lambda_cjs": 0}),
    "fg": ({"lambda_cjs": 0},),
}


@dataclass
class SpLIPConfig(MethodConfig):
    """SpLIP options (see the module docstring).

    Attributes:
        lr / lr_ln: mapping blocks and head / CLIP's image-encoder LayerNorms.
        margin: the fixed margin (FG; category level with ``adaptive_margin=False``).
        adaptive_margin: category level: ``mu = cos(T_c+, T_c-)``.
        lambda_cls / lambda_cjs: alpha / beta.
        n_text_prompts / n_layer_prompts: ``m`` (vision -> text) and ``n`` (layer-wise text -> vision).
        vision_to_text / text_to_vision / layerwise: the three mapping blocks ``B_t``, ``B_v``, ``B_vt``.
        photo_template / sketch_template: the modality-specific templates (same number of words).
        jigsaw_grid / n_permutations / head_width / head_layers: the jigsaw task and its head.
        tune_ln: train CLIP's image-encoder LayerNorms.
        negatives: ``"random"`` or ``"batch-hard"`` (in-batch, see the module docstring).
    """

    lr: float = 1e-3
    lr_ln: float = 1e-4
    margin: float = 0.2
    adaptive_margin: bool = True
    lambda_cls: float = 1.0
    lambda_cjs: float = 0.5
    n_text_prompts: int = 4
    n_layer_prompts: int = 2
    vision_to_text: bool = True
    text_to_vision: bool = True
    layerwise: bool = True
    photo_template: str = "a photo of a {}."
    sketch_template: str = "a sketch of a {}."
    jigsaw_grid: int = 3
    n_permutations: int = 30
    head_width: int = 64
    head_layers: int = 2
    tune_ln: bool = True


# --------------------------------------------------------------------------------------------------
# jigsaw


@functools.lru_cache(maxsize=8)
def _jigsaw_permutations(n_tiles: int, count: int, seed: int) -> tuple:
    perms = np.array(list(itertools.permutations(range(n_tiles))), dtype=np.int8)  # [n!, n]
    if count > len(perms):
        raise ValueError(f"only {len(perms)} permutations of {n_tiles} tiles, {count} requested")
    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(len(perms)))]
    min_d = (perms != perms[chosen[0]]).sum(1)
    for _ in range(count - 1):
        j = int(min_d.argmax())  # the permutation farthest from every chosen one (ties: lowest index)
        chosen.append(j)
        min_d = np.minimum(min_d, (perms != perms[j]).sum(1))
    return tuple(tuple(int(v) for v in perms[j]) for j in chosen)


def jigsaw_permutations(grid: int = 3, count: int = 30, seed: int = 0) -> torch.Tensor:
    """A fixed set of ``count`` tile permutations of a ``grid x grid`` jigsaw, ``[count, grid**2]``.

    Greedy maximal minimum Hamming distance (Noroozi and Favaro, ECCV 2016): start from a seeded random
    permutation, then repeatedly add the permutation whose distance to the nearest chosen one is
    largest. Deterministic for a given ``(grid, count, seed)``.
    """
    if grid < 2 or count < 2:
        raise ValueError(f"a jigsaw needs grid >= 2 and at least 2 permutations, got grid={grid}, count={count}")
    if grid > 3:
        raise ValueError("jigsaw grids above 3 x 3 (16! permutations) are not supported")
    return torch.tensor(_jigsaw_permutations(grid * grid, count, seed), dtype=torch.long)


def shuffle_tiles(images: torch.Tensor, perm: torch.Tensor, grid: int = 3) -> torch.Tensor:
    """Cut ``images`` ``[B, C, H, W]`` into ``grid x grid`` tiles, permute them by ``perm`` ``[B, grid**2]``.

    Sides that are not multiples of ``grid`` are padded (edge replicate, bottom / right) to the next
    multiple for the shuffle, and the result is cropped back to ``H x W`` (tiles keep their pixels: no
    resampling).
    """
    B, C, H, W = images.shape
    ph, pw = (-H) % grid, (-W) % grid
    x = F.pad(images, (0, pw, 0, ph), mode="replicate") if ph or pw else images
    x, _ = patch_shuffle(x, grid, perm=perm)
    return x[..., :H, :W]


def tile_features(patch_tokens: torch.Tensor, grid_size, grid: int = 3) -> torch.Tensor:
    """Average the patch tokens ``[B, N, D]`` of a ``gh x gw`` grid over ``grid x grid`` tiles: ``[B, grid**2, D]``."""
    B, N, D = patch_tokens.shape
    gh, gw = grid_size
    x = patch_tokens.reshape(B, gh, gw, D).permute(0, 3, 1, 2)  # [B, D, gh, gw]
    return F.adaptive_avg_pool2d(x, grid).flatten(2).transpose(1, 2)  # [B, grid**2, D]


class JigsawHead(nn.Module):
    """A small transformer that predicts the permutation index from ``[F(x) ; F(s')]`` tile features."""

    def __init__(self, in_dim: int, n_tiles: int, n_classes: int, width: int = 128, layers: int = 2):
        super().__init__()
        self.inp = nn.Linear(in_dim, width)
        self.pos = nn.Parameter(0.02 * torch.randn(2 * n_tiles, width))  # tile position x {x, s'}
        self.cls = nn.Parameter(0.02 * torch.randn(1, 1, width))
        layer = nn.TransformerEncoderLayer(width, max(1, width // 32), 2 * width, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, n_classes)

    def forward(self, fx: torch.Tensor, fs: torch.Tensor) -> torch.Tensor:
        """``fx``, ``fs``: ``[B, T, D]`` tile features -> logits ``[B, n_classes]``."""
        tok = self.inp(torch.cat([fx, fs], dim=1)) + self.pos  # [B, 2T, w]
        tok = torch.cat([self.cls.expand(tok.shape[0], -1, -1), tok], dim=1)
        return self.out(self.norm(self.encoder(tok)[:, 0]))


def _mapping(inp: int, hidden: int, out: int) -> nn.Sequential:
    """A mapping block: LayerNorm, Linear, GELU, Linear (last layer small: prompts start near zero)."""
    block = nn.Sequential(nn.LayerNorm(inp), nn.Linear(inp, hidden), nn.GELU(), nn.Linear(hidden, out))
    nn.init.normal_(block[-1].weight, std=0.02 / math.sqrt(hidden))
    nn.init.zeros_(block[-1].bias)
    return block


# --------------------------------------------------------------------------------------------------


class SpLIP(SBIRMethod):
    """SpLIP (see the module docstring). Settings ``zs`` and ``fg`` (``gzs`` trains as ``zs``)."""

    name = "splip"
    Config = SpLIPConfig
    uses_text = True
    new_params_group = "new"

    def build(self):
        cfg = self.cfg
        if self.text is None:
            raise NotImplementedError("SpLIP needs a CLIP text tower")
        if cfg.negatives not in ("random", "batch-hard"):
            raise ValueError(f"negatives must be 'random' or 'batch-hard', got {cfg.negatives!r}")
        D, W = self.width, self.text.width
        m, n = cfg.n_text_prompts, cfg.n_layer_prompts
        self.Lv, self.Lt = self.visual.num_layers, self.text.num_layers
        emb = self.text.token_embedding
        dev = emb.weight.device
        # template words per modality: "a photo of a" -> 4 word embeddings [nw, W]
        self.templates = {"photo": cfg.photo_template, "sketch": cfg.sketch_template}
        words = {}
        for mod, t in self.templates.items():
            if t.count("{}") != 1:
                raise ValueError(f"{mod}_template must contain one '{{}}', got {t!r}")
            ids = self.tokenizer([t.split("{}")[0].strip()])[0]
            ids = ids[1:int(ids.argmax())]  # between SOT and EOT
            words[mod] = ids
        if len(words["photo"]) != len(words["sketch"]):
            raise ValueError("photo_template and sketch_template must have the same number of words before '{}'")
        self.n_words = len(words["photo"])
        with torch.no_grad():
            for mod in ("photo", "sketch"):
                self.register_buffer(f"words_{mod}", emb(words[mod].to(dev)).detach().clone(), persistent=False)
            # the pooled seen class: mean over classes of the mean word embedding of each class name
            names = [c.replace("_", " ") for c in self.classnames] or ["object"]
            pooled = []
            for c in names:
                ids = self.tokenizer([c])[0]
                pooled.append(emb(ids[1:int(ids.argmax())].to(dev)).mean(0))
            self.register_buffer("pooled_class", torch.stack(pooled).mean(0), persistent=False)  # [W]
        # token ids: the pooled prompt "X * (m + nw + 1)" + the template's tail, and the class prompts
        m_eff = m if cfg.vision_to_text else 0
        self.m_eff = m_eff
        for mod, t in self.templates.items():
            tail = t.split("{}")[1]
            ids = self.tokenizer([" ".join(["X"] * (m_eff + self.n_words + 1)) + tail])
            self.register_buffer(f"pooled_ids_{mod}", ids[:, :int(ids.argmax()) + 1].to(dev), persistent=False)
            if self.classnames:
                cls_ids = build_prompt_tokens(self.tokenizer, self.classnames, m_eff, t)
                self.register_buffer(f"class_ids_{mod}", cls_ids[:, :int(cls_ids.argmax(-1).max()) + 1].to(dev),
                                     persistent=False)
        if cfg.vision_to_text:
            self.b_t = _mapping(D, D, m * W)
        if cfg.text_to_vision:
            self.b_v = _mapping(W, W, D)
        if cfg.layerwise:
            self.b_vt = _mapping(W, W, n * D)
        if cfg.lambda_cjs > 0:
            self.register_buffer("perms", jigsaw_permutations(cfg.jigsaw_grid, cfg.n_permutations), persistent=False)
            self.head = JigsawHead(D, cfg.jigsaw_grid ** 2, cfg.n_permutations, cfg.head_width, cfg.head_layers)
        if cfg.tune_ln:
            self.tune_layernorms()

    # ------------------------------------------------------------------------------ prompts
    def _stat(self, images: torch.Tensor) -> torch.Tensor:
        """Mean patch embedding ``[B, D]`` (conv1 + positional embedding, no transformer; frozen)."""
        with torch.no_grad():
            return self.visual.embed(images)[:, 1:].mean(dim=1)

    def text_context(self, stat: torch.Tensor) -> torch.Tensor:
        """``B_t``: ``[B, D]`` image statistics -> ``[B, m, W]`` text prompt tokens."""
        return self.b_t(stat).view(stat.shape[0], self.cfg.n_text_prompts, self.text.width)

    def _deep(self, ctx):
        return (lambda layer, x: ctx if layer > 0 else None) if ctx is not None else None

    def text_layer_features(self, images: torch.Tensor, modality: str) -> torch.Tensor:
        """EOT output of every text layer for the pooled seen-class prompt of each image: ``[B|1, L_t, W]``."""
        ids = getattr(self, f"pooled_ids_{modality}")  # [1, T]
        words = getattr(self, f"words_{modality}")
        B = images.shape[0] if self.cfg.vision_to_text else 1
        parts = [words.expand(B, -1, -1), self.pooled_class.view(1, 1, -1).expand(B, 1, -1)]
        ctx = None
        if self.cfg.vision_to_text:
            ctx = self.text_context(self._stat(images))  # [B, m, W]
            parts.insert(0, ctx)
        out = self.text.forward_features(ids.expand(B, -1), ctx=torch.cat(parts, dim=1), deep_ctx=self._deep(ctx),
                                         return_tokens=list(range(1, self.Lt + 1)))
        eot = int(ids[0].argmax())
        return torch.stack([h[:, eot] for h in out.hidden_states[1:]], dim=1)  # [B, L_t, W]

    def visual_prompts(self, images: torch.Tensor, modality: str) -> list[torch.Tensor] | None:
        """Per vision layer the prompt tokens ``[B|1, K, D]`` (static + layer-wise), or ``None``."""
        cfg = self.cfg
        static = self.b_v(getattr(self, f"words_{modality}")).unsqueeze(0) if cfg.text_to_vision else None  # [1, 4, D]
        if not cfg.layerwise:
            return None if static is None else [static] * self.Lv
        t = self.text_layer_features(images, modality)  # [B|1, L_t, W]
        idx = [round(layer * (self.Lt - 1) / max(1, self.Lv - 1)) for layer in range(self.Lv)]
        lw = self.b_vt(t[:, idx]).view(t.shape[0], self.Lv, cfg.n_layer_prompts, self.width)  # [B|1, Lv, n, D]
        B = lw.shape[0]
        out = []
        for layer in range(self.Lv):
            toks = [lw[:, layer]] if static is None else [static.expand(B, -1, -1), lw[:, layer]]
            out.append(torch.cat(toks, dim=1))
        return out

    def forward_features(self, images: torch.Tensor, modality: str):
        """The prompted image encoder's :class:`~sbirlab.models.prompts.VisionOutput` (embedding, patch tokens)."""
        vp = self.visual_prompts(images, modality)
        if vp is None:
            return self.visual.forward_features(images)
        return self.visual.forward_features(images, prompts=vp[0], deep_prompts=[None, *vp[1:]])

    def encode(self, images, modality):
        return self.forward_features(images, modality).embeds

    def prompted_class_text(self, modality: str, images: torch.Tensor | None = None) -> torch.Tensor:
        """L2-normalised class text embeddings ``[C, E]`` of the seen classes, ``B_t``-conditioned on
        the mean statistic of ``images`` (frozen template embeddings without ``B_t``)."""
        ids = getattr(self, f"class_ids_{modality}")
        if not self.cfg.vision_to_text or images is None:
            with torch.no_grad():
                return F.normalize(self.text(ids), dim=-1)
        ctx = self.text_context(self._stat(images).mean(0, keepdim=True))  # [1, m, W]
        return F.normalize(self.text(ids, ctx=ctx, deep_ctx=self._deep(ctx)), dim=-1)

    # ------------------------------------------------------------------------------ training
    def margins(self, labels: torch.Tensor, neg_labels: torch.Tensor) -> float | torch.Tensor:
        """The triplet margins: ``max(0, cos(T_c+, T_c-))`` per triplet (category level, adaptive), else ``margin``."""
        if self.setting == "fg" or not self.cfg.adaptive_margin:
            return self.cfg.margin
        t = self.class_text
        return (t[labels] * t[neg_labels]).sum(-1).clamp_min(0.0)  # [B]

    def jigsaw_loss(self, sketches, fs, fp, fn):
        """``L_cjs`` from the tile features of ``s``, ``p+``, ``p-`` ``[B, 9, D]`` (see the module docstring)."""
        g = self.cfg.jigsaw_grid
        B = sketches.shape[0]
        k = torch.randint(len(self.perms), (B,), device=sketches.device)
        with torch.no_grad():
            shuffled = shuffle_tiles(sketches, self.perms[k], g)
            out = self.forward_features(shuffled, "sketch")
            f_shuf = tile_features(out.patch_tokens, out.grid_size, g)  # [B, 9, D]
        logits = self.head(torch.cat([fs, fp, fn]), f_shuf.repeat(3, 1, 1))  # [3B, P]
        ell = F.cross_entropy(logits, k.repeat(3), reduction="none").view(3, B)
        loss = ell[0].mean() + ell[1].mean() + F.relu(1.0 + ell[1] - ell[2]).mean()
        acc = (logits.argmax(-1) == k.repeat(3)).float().view(3, B).mean(1)
        return loss, acc

    def loss(self, batch):
        y = batch["label"]
        so = self.forward_features(batch["sketch"], "sketch")
        po = self.forward_features(batch["photo"], "photo")
        s, p = F.normalize(so.embeds, dim=-1), F.normalize(po.embeds, dim=-1)
        with torch.no_grad():
            dist = pairwise_cosine_distance(s.float(), p.float())
        rand, hard, has = select_negatives(dist, y, batch.get("photo_index"), self.setting)
        j = hard if self.cfg.negatives == "batch-hard" else rand
        n, n_tok, n_lab = p[j], po.patch_tokens[j], y[j]
        if not bool(has.all()):  # anchors without a valid in-batch photo: the sampled negative
            miss = (~has).nonzero().flatten()
            no = self.forward_features(batch["photo_neg"][miss], "photo")
            n, n_tok, n_lab = n.clone(), n_tok.clone(), n_lab.clone()
            n[miss], n_tok[miss] = F.normalize(no.embeds, dim=-1), no.patch_tokens
            n_lab[miss] = batch["label_neg"][miss].to(n_lab.device)
        l_tri = triplet_loss(s, p, n, self.margins(y, n_lab))
        logs = {"triplet": l_tri.item()}
        total = l_tri
        if self.cfg.lambda_cls > 0:
            l_cls = classification_loss(s, y, self.prompted_class_text("sketch", batch["sketch"]), self.logit_scale) \
                + classification_loss(p, y, self.prompted_class_text("photo", batch["photo"]), self.logit_scale)
            total = total + self.cfg.lambda_cls * l_cls
            logs["cls"] = l_cls.item()
        if self.cfg.lambda_cjs > 0:
            g = self.cfg.jigsaw_grid
            grid = so.grid_size
            fs, fp = tile_features(so.patch_tokens, grid, g), tile_features(po.patch_tokens, grid, g)
            l_cjs, acc = self.jigsaw_loss(batch["sketch"], fs, fp, tile_features(n_tok, grid, g))
            total = total + self.cfg.lambda_cjs * l_cjs
            logs["cjs"] = l_cjs.item()
            logs["jigsaw_acc_pos"] = acc[1].item()
        logs["loss"] = total.item()
        return total, logs
