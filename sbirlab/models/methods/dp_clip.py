"""DP-CLIP: dual-modal (visual + textual) category-adaptive prompting for (fine-grained) ZS-SBIR.

Gao, Jiao, Wang, Zhang, Zhang, Zhang. *Dual-Modal Prompting for Sketch-Based Image Retrieval.*
arXiv 2404.18695 (official code built from Sketch_LVM). Implemented as docs/methods.md §5 specifies, on a
frozen open_clip ViT whose LayerNorms train:

**Visual prompting (category-specific deep prompts).** A support set of one sketch and two photos of
the target category is patch-embedded (conv1 + CLS + positional embedding, no ``ln_pre``) and
concatenated (``3 (N+1)`` tokens). Learnable base prompts ``l`` ``[L, K=3, D]`` pass a shared
``Linear(D, D)`` + dropout 0.1; one new transformer block takes ``[support tokens ; projected l_m]``
and its outputs at the ``K`` prompt positions are the layer-``m`` prompts. They are injected VPT-deep
(layer 0 through ``ln_pre`` as in B-Deep, then the prompt positions are replaced before every block)
and shared by the sketches and photos of that category.

**Textual prompting (category text-guided channel scaling).** ``t_c`` is the normalised mean of the
frozen text embeddings of the class name under :data:`TEMPLATES`. Per layer an MLP
(``E -> E -> ReLU -> out``) maps ``t_c`` to scales:

* ``text_scaling="side"`` (default, the released code's form): ``out = 2r`` scales ``s_att, s_mlp``;
  a LoRA branch of rank ``r`` on the fused QKV projection input (``B_att A_att h`` added to QKV) and a
  parallel LoRA on the MLP (``B_mlp A_mlp h`` added to the MLP output) whose rank-``r`` hidden
  activations are multiplied by ``(1 + s)``. ``B`` matrices start at zero: training starts at
  CLIP + prompts.
* ``text_scaling="direct"``: ``out = 3D + H`` scales multiplying the Q/K/V channels and the MLP's
  ``H`` hidden channels themselves by ``(1 + s)`` (last MLP layer zero-initialised; ``rank`` unused).
* ``text_scaling="none"``: the ablation without the textual module.

**Patch-level matching.** The tokens entering the last block form a ``gh x gw`` grid; four
overlapping windows (top-left, top-right, bottom-left, bottom-right) of side
``round(5/7 * g)`` per axis (DECISION: 5 x 5 on ViT-B/32's 7 x 7, 6 x 6 on the tiny CLIP's 8 x 8,
3 x 3 on a 4 x 4 grid; ``window`` overrides it) go, as ``[CLS ; window tokens]``, through a copy of
the last block with per-window copies of ``ln_post`` and ``proj``: four local embeddings. Distance at
inference ``d_global + 0.2 * sum_i d_local_i``, realised by the embedding
``[g ; sqrt(0.2) l_1 ; ... ; sqrt(0.2) l_4]`` (each part L2-normalised): its dot products rank the
gallery exactly by the fused distance, so every evaluation in sbirlab works unchanged (the embedding
is ``5 E`` wide). DECISION: the copied block trains its LayerNorms only (attention and MLP stay
CLIP's, as everywhere in the backbone); the ``ln_post`` / ``proj`` copies train.

**Losses.** Triplet on cosine distance with margin 0.15, every term ``global + 0.1 * sum local``;
the curriculum moves from random to batch-hard negatives, ``L = (1 - w) L_random + w L_hard`` with
``w = min(1, 0.25 * floor(stages * progress))`` (DECISION: the paper's ``0.25 floor(epoch / 10)`` over
60 epochs is ``stages = 6`` of training progress; capped at 1, where the paper's formula would reach
1.25 in its last 10 epochs). ``negatives="random"`` / ``"batch-hard"`` fix ``w`` at 0 / 1.

DECISIONS of sbirlab beyond the paper, and why:

* **Negatives come from the batch.** The random negative of an anchor is a uniformly drawn valid
  photo among the batch's positives (another class at category level; the same class, another
  instance, in FG), the hard one the closest of them by the training distance. The sampled
  ``photo_neg`` is encoded only for FG anchors without any valid in-batch photo. This is what makes
  category-specific prompts trainable at category level (every negative photo is embedded with the
  prompts of its own routed category, whose support set is in the batch) and saves a third of the
  image forwards (routing costs one forward of the frozen CLIP per training image).
* **Batches.** FG batches hold one category (the paper's sampler: every in-batch negative is a hard,
  same-category one; :attr:`DPCLIP.batch_classes` = 1 makes :func:`sbirlab.experiment.run_experiment`
  sample so); category-level batches hold several classes (the run's ``classes_per_batch``): their
  negatives must come from other classes.
* **The category of an image: given in FG, routed at category level, in training as at test.** The
  paper gives every image its (known) category. That is the FG protocol (retrieval *within* a given
  category), but at category level (settings ``zs`` / ``gzs``) the category *is* the answer: an image
  embedded with its own class's prompts and scales carries a class code, the triplet (positive of the
  same class, negative of another) is solved by the prompts themselves, and at test time the learnt
  code is read off whatever assigns the categories. sbirlab therefore never lets a label pick the
  prompts of an image at category level (``category_prompts="routed"``, the default):

  - an image is **routed** to a category by the original CLIP's zero-shot classification (pristine
    LayerNorms, :meth:`DPCLIP.route`) against the categories' ``t_c``: the training classes while
    training (sketches and photos of the batch alike, label-free, exactly as at test time), the test
    categories at test time. An image gets the prompts and scales of its routed category, so they
    carry only what the frozen router knows, never the label;
  - the support set of a routed category is label-free too: the first sketch and the first two photos
    *routed* to it (gaps filled with its other routed images, :func:`support_rows`), from the training
    batch while training and from the evaluated items at test time (:meth:`DPCLIP.prepare_eval`; a
    category no item is routed to gets the generic support set below). Labels only define the loss
    (which photos are positives and negatives).

  ``category_prompts="none"`` is the route-free variant (the ``zs`` ablation row): **one** shared
  prompt set for every image, generated from a generic support set (the batch's first sketch and
  first two photos while training, the first query sketch and the first two gallery photos at test
  time) and the normalised mean ``t_c`` of the vocabulary (training classes / test categories): no
  category information at all. What the default gains over it is what category-adaptive prompting
  adds on top of routing; the frozen CLIP with a "same routed category" bonus (notebook 06) is how
  much the router alone explains.

  In FG (``setting="fg"``) training keeps the true category (the FG protocol: the category is given;
  its support set is the batch's first sketch and first two paired photos) and the test support sets
  are each category's first test items (1 sketch + 2 photos, the paper's few-shot support); a test
  image is still routed (sbirlab reads no test label by default), which can be wrong where the
  paper's category is not: pass ``labels=`` to :meth:`DPCLIP.encode_sketch` /
  :meth:`DPCLIP.encode_photo` for the paper's oracle protocol (ignored with
  ``category_prompts="none"``).
* **Learning rates.** 1e-3 for the new modules and 1e-4 for CLIP's LayerNorms (the paper's 1e-5 /
  1e-6 are for 60 GPU epochs; sbirlab's ``cpu`` preset trains a few hundred steps, as CLIP-AT does).
* **Templates.** :data:`TEMPLATES` are 20 of our own (photo, sketch and drawing phrasings); the
  released code averages 63.
* **Generator block.** A copy of CLIP's first vision block whose attention and MLP output projections
  (and the bias of the base prompts' ``Linear``) start at zero: at initialisation the block is the
  identity and the prompts are the small projected base prompts (VPT-like tokens, as B-Deep's), so
  training starts near CLIP and the support-set conditioning grows from zero (as the LoRA ``B``
  matrices do). The paper only says "a new transformer block"; a block whose outputs are full-size
  image-like tokens at every layer costs the untrained tiny CLIP a third of its mAP.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..losses import pairwise_cosine_distance, triplet_loss
from ..prompts import BlockEdit, appended_outputs, check_editable
from .base import MethodConfig, SBIRMethod, layernorm_parameters, select_negatives

__all__ = ["DPCLIP", "DPCLIPConfig", "TEMPLATES", "window_boxes", "select_negatives", "curriculum_weight",
           "prompt_outputs", "support_rows", "ABLATIONS"]

#: text templates averaged into the category text ``t_c`` (sbirlab's own; the released code uses 63)
TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.", "a sketch of a {}.", "a drawing of a {}.", "a black and white sketch of a {}.",
    "a doodle of a {}.", "a pencil drawing of a {}.", "a line drawing of a {}.", "an outline of a {}.",
    "a bad photo of a {}.", "a good photo of a {}.", "a close-up photo of the {}.", "a bright photo of a {}.",
    "a cropped photo of the {}.", "a photo of the small {}.", "a photo of the large {}.", "a rendering of a {}.",
    "a cartoon {}.", "art of the {}.", "a picture of a {}.", "itap of a {}.",
)

#: the ablation rows of the results table (:func:`sbirlab.experiment.table_configs`), by setting
ABLATIONS: dict[str, tuple[dict, ...]] = {
    "fg": ({"text_scaling": "none"}, {"patch_matching": False}),
    "zs": ({"text_scaling": "none"}, {"patch_matching": False}, {"category_prompts": "none"}),
}


@dataclass
class DPCLIPConfig(MethodConfig):
    """DP-CLIP options (see the module docstring).

    Attributes:
        lr: new modules (generator, base prompts, scale MLPs, LoRA, patch-matching copies).
        lr_ln: CLIP's image-encoder LayerNorms.
        margin: triplet margin (the paper: 0.15).
        negatives: ``"curriculum"`` (random -> batch-hard), ``"random"`` or ``"batch-hard"``.
        curriculum_stages / curriculum_step: ``w = min(1, step * floor(stages * progress))``.
        n_prompts: prompt tokens per layer (K = 3).
        prompt_dropout: dropout on the projected base prompts.
        visual_prompts: the visual prompting module on / off.
        text_scaling: ``"side"`` (LoRA form), ``"direct"`` or ``"none"``.
        rank: LoRA rank ``r`` of the side-way form.
        patch_matching: the patch-level matching module on / off.
        window: window side in patches (0 = ``round(5/7 * grid)`` per axis).
        local_weight_train / local_weight_test: weight of the summed local terms in the loss / distance.
        tune_ln: train CLIP's image-encoder LayerNorms.
        category_prompts: whose prompts and scales an image gets: ``"routed"`` (its category: the one the
            frozen CLIP routes it to at category level, in training and at test time; the given one in
            FG training) or ``"none"`` (one shared set from a generic support set: no category at all).
    """

    # optimisation and loss
    lr: float = 1e-3
    lr_ln: float = 1e-4
    tune_ln: bool = True
    margin: float = 0.15
    # negatives
    negatives: str = "curriculum"
    curriculum_stages: int = 6
    curriculum_step: float = 0.25
    # visual prompting
    visual_prompts: bool = True
    category_prompts: str = "routed"
    n_prompts: int = 3
    prompt_dropout: float = 0.1
    # text-guided scaling
    text_scaling: str = "side"
    rank: int = 16
    # patch-level matching
    patch_matching: bool = True
    window: int = 0
    local_weight_train: float = 0.1
    local_weight_test: float = 0.2


# --------------------------------------------------------------------------------------------------
# helpers shared with other methods


def window_boxes(grid: Sequence[int], window: int = 0) -> list[tuple[int, int, int, int]]:
    """The four overlapping corner windows of a ``gh x gw`` patch grid: ``(row0, col0, h, w)`` each.

    Order: top-left, top-right, bottom-left, bottom-right. The side is ``window`` when given, else
    ``max(1, round(5 / 7 * g))`` per axis (DP-CLIP's 5 x 5 windows of ViT-B/32's 7 x 7 grid).

    Raises:
        ValueError: a window larger than the grid.
    """
    gh, gw = int(grid[0]), int(grid[1])
    wh = window or max(1, round(5 * gh / 7))
    ww = window or max(1, round(5 * gw / 7))
    if wh > gh or ww > gw or wh < 1:
        raise ValueError(f"window {wh}x{ww} does not fit the {gh}x{gw} patch grid")
    return [(0, 0, wh, ww), (0, gw - ww, wh, ww), (gh - wh, 0, wh, ww), (gh - wh, gw - ww, wh, ww)]


def curriculum_weight(progress: float, negatives: str, stages: int = 6, step: float = 0.25) -> float:
    """Fraction ``w`` of the hard-negative loss at training ``progress`` in ``[0, 1]``.

    ``"random"`` -> 0, ``"batch-hard"`` -> 1, ``"curriculum"`` -> ``min(1, step * floor(stages * progress))``
    (DP-CLIP's ``0.25 floor(epoch / 10)`` over 60 epochs with the defaults).
    """
    if negatives == "random":
        return 0.0
    if negatives == "batch-hard":
        return 1.0
    if negatives != "curriculum":
        raise ValueError(f"negatives must be 'random', 'batch-hard' or 'curriculum', got {negatives!r}")
    p = min(max(float(progress), 0.0), 1.0 - 1e-9)
    return float(min(1.0, step * math.floor(stages * p)))


def support_rows(sketch_cats: Sequence[int], photo_cats: Sequence[int], category: int) -> list[tuple[str, int]]:
    """The support set of ``category``: ``("sketch", i)`` / ``("photo", j)`` positions, 3 of them.

    The first sketch and the first two photos whose category (``sketch_cats[i]`` / ``photo_cats[j]``:
    routed, or given in FG) is ``category``; a missing one is filled with the category's next sketches
    (up to two), then its third photo, then the last one repeated. Empty when no image has the category.
    """
    sk = [("sketch", i) for i, c in enumerate(sketch_cats) if c == category]
    ph = [("photo", j) for j, c in enumerate(photo_cats) if c == category]
    rows, fill = sk[:1] + ph[:2], sk[1:3] + ph[2:3]
    while rows and len(rows) < 3:
        rows.append(fill.pop(0) if fill else rows[-1])
    return rows


def _mean_text(text: torch.Tensor) -> torch.Tensor:
    """``[1, E]``: the normalised mean of categories' texts ``t_c`` (the shared prompts' generic text)."""
    return F.normalize(text.float().mean(0, keepdim=True), dim=-1)


def _check_block(block: nn.Module) -> None:
    try:
        check_editable(block)
    except NotImplementedError:
        raise NotImplementedError(
            f"DP-CLIP's text-guided scaling edits open_clip's ResidualAttentionBlock (nn.MultiheadAttention); "
            f"got {type(block).__name__}: use text_scaling='none' with this backbone") from None


def prompt_outputs(block: nn.Module, context: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
    """The generator's layer prompts: ``block(cat([context, p_l]))[..., -K:, :]`` for every layer ``l``.

    :func:`sbirlab.models.prompts.appended_outputs` (the context's keys and values projected once, only
    the ``K`` prompt positions queried), with DP-CLIP's backbone check.

    Args:
        block: an open_clip ``ResidualAttentionBlock`` (``nn.MultiheadAttention``).
        context: ``[U, T, D]`` tokens shared by all layers (the support set).
        prompts: ``[U, L, K, D]`` the projected base prompts of every layer.

    Returns:
        ``[U, L, K, D]``.
    """
    _check_block(block)
    return appended_outputs(block, context, prompts)


class _SideScaler(nn.Module):
    """One layer's side-way text-guided scaling: t_c -> (s_att, s_mlp); LoRA of rank r on QKV and MLP."""

    def __init__(self, e: int, d: int, r: int):
        super().__init__()
        self.r = r
        self.mlp = nn.Sequential(nn.Linear(e, e), nn.ReLU(inplace=True), nn.Linear(e, 2 * r))
        self.att_a = nn.Linear(d, r, bias=False)
        self.att_b = nn.Linear(r, 3 * d, bias=False)
        self.mlp_a = nn.Linear(d, r, bias=False)
        self.mlp_b = nn.Linear(r, d, bias=False)
        nn.init.zeros_(self.att_b.weight)
        nn.init.zeros_(self.mlp_b.weight)

    def edit(self, s: torch.Tensor) -> BlockEdit:
        """The block edit for scales ``s`` ``[B, 2r]``: ``B_att((1 + s_att) A_att h)`` added to QKV,
        ``B_mlp((1 + s_mlp) A_mlp h)`` added to the MLP output."""
        s_att, s_mlp = (1 + s[:, None, :self.r]), (1 + s[:, None, self.r:])  # [B, 1, r] each
        return BlockEdit(qkv_delta=lambda h: self.att_b(self.att_a(h) * s_att),
                         mlp_delta=lambda h: self.mlp_b(self.mlp_a(h) * s_mlp))


class _DirectScaler(nn.Module):
    """One layer's direct text-guided scaling: t_c -> scales of the Q/K/V and MLP hidden channels."""

    def __init__(self, e: int, d: int, hidden: int):
        super().__init__()
        self.d = d
        self.mlp = nn.Sequential(nn.Linear(e, e), nn.ReLU(inplace=True), nn.Linear(e, 3 * d + hidden))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def edit(self, s: torch.Tensor) -> BlockEdit:
        """The block edit for scales ``s`` ``[B, 3D + H]``: Q/K/V and MLP hidden channels times ``(1 + s)``."""
        return BlockEdit(qkv_scale=1 + s[:, None, :3 * self.d], mlp_hidden_scale=1 + s[:, None, 3 * self.d:])


# --------------------------------------------------------------------------------------------------


class DPCLIP(SBIRMethod):
    """DP-CLIP (see the module docstring). Settings ``zs`` and ``fg`` (``gzs`` trains as ``zs``)."""

    name = "dp-clip"
    Config = DPCLIPConfig
    uses_text = False
    new_params_group = "new"

    # ------------------------------------------------------------------------------ construction
    def build(self):
        cfg = self.cfg
        if cfg.text_scaling not in ("side", "direct", "none"):
            raise ValueError(f"text_scaling must be 'side', 'direct' or 'none', got {cfg.text_scaling!r}")
        curriculum_weight(0.0, cfg.negatives)  # validates the name
        if cfg.rank < 1:
            raise ValueError(f"rank must be >= 1, got {cfg.rank}")
        if cfg.category_prompts not in ("routed", "none"):
            raise ValueError(f"category_prompts must be 'routed' or 'none', got {cfg.category_prompts!r}")
        v = self.clip.visual
        blocks = v.transformer.resblocks
        L, D, E, K = len(blocks), self.width, self.visual.output_dim, cfg.n_prompts
        if cfg.visual_prompts:
            self.base_prompts = nn.Parameter(0.02 * torch.randn(L, K, D))  # [L, K, D]
            self.prompt_proj = nn.Linear(D, D)
            nn.init.zeros_(self.prompt_proj.bias)
            self.prompt_drop = nn.Dropout(cfg.prompt_dropout)
            self.generator = copy.deepcopy(blocks[0])
            self.generator.requires_grad_(True)
            with torch.no_grad():  # residual branches start at 0: prompts start as the projected base prompts
                for lin in (self.generator.attn.out_proj, self.generator.mlp.c_proj):
                    lin.weight.zero_()
                    lin.bias.zero_()
        if cfg.text_scaling != "none":
            if self.text is None:
                raise NotImplementedError("DP-CLIP's textual module needs a CLIP text tower")
            for blk in blocks:
                _check_block(blk)
            if cfg.text_scaling == "side":
                self.scalers = nn.ModuleList([_SideScaler(E, D, cfg.rank) for _ in range(L)])
            else:
                hidden = blocks[0].mlp.c_fc.out_features
                self.scalers = nn.ModuleList([_DirectScaler(E, D, hidden) for _ in range(L)])
        if cfg.patch_matching:
            self.local_block = copy.deepcopy(blocks[-1])
            self.local_block.requires_grad_(False)
            for mod in self.local_block.modules():
                if isinstance(mod, nn.LayerNorm):
                    mod.requires_grad_(True)
            self.local_ln_post = nn.ModuleList([copy.deepcopy(v.ln_post) for _ in range(4)])
            self.local_ln_post.requires_grad_(True)
            proj = v.proj.detach() if v.proj is not None else torch.eye(D)
            self.local_proj = nn.ParameterList([nn.Parameter(proj.clone()) for _ in range(4)])
        # the original LayerNorms (routing uses the pristine CLIP even after LayerNorm tuning)
        self._ln_orig = {n: p.detach().clone() for n, p in layernorm_parameters(v)}
        if cfg.tune_ln:
            self.tune_layernorms()
        # t_c of the training classes [C, E]: the text scaling's input and the training-time router's classes
        use_text = self.needs_category and self.text is not None and bool(self.classnames)
        self.register_buffer("train_text", self.category_text(self.classnames) if use_text else torch.zeros(0),
                             persistent=False)
        self._vocab: list[str] = []
        self._vocab_text: torch.Tensor | None = None
        self._support: dict[str, torch.Tensor] = {}
        self._shared_support: torch.Tensor | None = None  # category_prompts="none": the generic support set
        self._cache: tuple | None = None

    @property
    def needs_category(self) -> bool:
        """Whether either prompting module is on: embeddings then need prompts / scales (their category's,
        or the shared set with ``category_prompts="none"``)."""
        return self.cfg.visual_prompts or self.cfg.text_scaling != "none"

    @property
    def shared_prompts(self) -> bool:
        """``category_prompts="none"``: one prompt set (and scale set) for every image, no category."""
        return self.cfg.category_prompts == "none"

    @property
    def training_category(self) -> str:
        """Where a training image's category comes from: ``"label"`` (FG: the category is given),
        ``"routed"`` (category level: the frozen CLIP's zero-shot guess) or ``"none"`` (shared prompts)."""
        if self.shared_prompts:
            return "none"
        return "label" if self.setting == "fg" else "routed"

    @property
    def batch_classes(self) -> int | None:
        """Classes per training batch this method needs: one in FG (the paper's sampler), else the run's."""
        return 1 if self.setting == "fg" else None

    @torch.no_grad()
    def category_text(self, classnames: Sequence[str]) -> torch.Tensor:
        """``t_c`` ``[C, E]``: the normalised mean of the frozen text embeddings over :data:`TEMPLATES`."""
        feats = torch.stack([self.frozen_text_features(classnames, t) for t in TEMPLATES])  # [T, C, E]
        return F.normalize(feats.mean(0), dim=-1)

    # ------------------------------------------------------------------------------ category parameters
    def category_params(self, text: torch.Tensor, support: torch.Tensor | None):
        """Prompts ``[U, L, K, D]`` and scales ``[U, L, S]`` of ``U`` categories (each ``None`` when off).

        Args:
            text: ``[U, E]`` category texts ``t_c``.
            support: ``[U, 3, 3, H, W]`` support images (1 sketch + 2 photos) per category.
        """
        prompts = scales = None
        if self.cfg.visual_prompts:
            if support is None:
                raise ValueError("DP-CLIP's visual prompts need a support set (1 sketch + 2 photos) per category")
            U = support.shape[0]
            L, K, D = self.base_prompts.shape
            with torch.no_grad():
                tok = self.visual.embed(support.flatten(0, 1))  # [U*3, 1+N, D] frozen patch embedding
            tok = tok.reshape(U, -1, D)  # [U, 3(1+N), D]: the three support images side by side
            base = self.prompt_drop(self.prompt_proj(self.base_prompts))  # [L, K, D]
            # = self.generator(cat([tok, base_m]))[:, -K:] for every layer m, without the support outputs
            prompts = prompt_outputs(self.generator, tok, base.unsqueeze(0).expand(U, -1, -1, -1).contiguous())
        if self.cfg.text_scaling != "none":
            scales = torch.stack([sc.mlp(text) for sc in self.scalers], dim=1)  # [U, L, S]
        return prompts, scales

    def encoder_inputs(self, prompts: torch.Tensor | None = None, scales: torch.Tensor | None = None) -> dict:
        """The :class:`~sbirlab.models.prompts.PromptedVisionEncoder` arguments of per-image prompts and scales.

        Layer-0 prompts go through ``ln_pre`` with the image tokens (``prompts``), layer ``l > 0`` ones
        replace the prompt positions before block ``l`` (``deep_prompts``), and the scales become each
        block's :class:`~sbirlab.models.prompts.BlockEdit` (``block_edits``). ``self.visual(images,
        **method.encoder_inputs(P, S))`` is the global embedding of :meth:`features`.

        Args:
            prompts: ``[B, L, K, D]`` (one set per image, e.g. ``P[category_index]``) or ``None``.
            scales: ``[B, L, S]`` or ``None`` (needs ``text_scaling != "none"``).

        Returns:
            ``{"prompts", "deep_prompts", "block_edits"}`` (``None`` where not given).
        """
        if scales is not None and self.cfg.text_scaling == "none":
            raise ValueError("dp-clip: scales given, but text_scaling='none' has no scalers")
        def deep(layer, image_tokens):  # layer 0 went through ln_pre with the image tokens
            return prompts[:, layer] if layer > 0 else None

        def edits(layer, x):
            return self.scalers[layer].edit(scales[:, layer].to(x.dtype))

        return {"prompts": prompts[:, 0] if prompts is not None else None,
                "deep_prompts": deep if prompts is not None else None,
                "block_edits": edits if scales is not None else None}

    def features(self, images: torch.Tensor, prompts: torch.Tensor | None = None,
                 scales: torch.Tensor | None = None, local: bool | None = None):
        """Global ``[B, E]`` and local ``[B, 4, E]`` (or ``None``) embeddings, unnormalised.

        Every image forward of DP-CLIP (training and :meth:`encode`) runs here, through the prompted
        encoder (:meth:`encoder_inputs`).

        Args:
            images: ``[B, 3, H, W]``.
            prompts: per-image prompts ``[B, L, K, D]`` or ``None`` (no visual prompts).
            scales: per-image scales ``[B, L, S]`` or ``None`` (no text-guided scaling).
            local: compute the patch-matching embeddings (default ``cfg.patch_matching``).
        """
        local = self.cfg.patch_matching if local is None else local
        inputs = self.encoder_inputs(prompts, scales)
        if not local:
            return self.visual(images, **inputs), None
        # the CLS + patch tokens entering the last block, sliced right before it runs (the block-edit
        # callable sees that sequence): the same autograd graph, hence bit-identical gradients, as the
        # original DP-CLIP forward
        edits, last, k = inputs["block_edits"], self.visual.num_layers - 1, 0 if prompts is None else prompts.shape[2]
        pen = []

        def block_edits(layer, x):
            if layer == last:
                pen.append(x[:, :x.shape[1] - k])
            return edits(layer, x) if edits is not None else None

        out = self.visual.forward_features(images, **{**inputs, "block_edits": block_edits})
        grid, n_img = out.grid_size, out.num_image_tokens
        if n_img != 1 + grid[0] * grid[1]:
            raise ValueError("patch_dropout removed patches: the tokens no longer form a grid")
        return out.embeds, self._local(pen[0], grid)

    def _local(self, pen: torch.Tensor, grid) -> torch.Tensor:
        """Patch-level matching: four corner windows through the last-block copy -> ``[B, 4, E]``."""
        B, _, D = pen.shape
        cls, patches = pen[:, :1], pen[:, 1:].reshape(B, grid[0], grid[1], D)  # [B, gh, gw, D]
        boxes = window_boxes(grid, self.cfg.window)
        seq = torch.cat([torch.cat([cls, patches[:, r:r + h, c:c + w].reshape(B, h * w, D)], dim=1)
                         for r, c, h, w in boxes])  # [4B, 1+h*w, D]
        out = self.local_block(seq)[:, 0].reshape(4, B, D)
        return torch.stack([self.local_ln_post[i](out[i]) @ self.local_proj[i] for i in range(4)], dim=1)

    def fuse(self, g: torch.Tensor, local: torch.Tensor | None, weight: float | None = None) -> torch.Tensor:
        """``[g ; sqrt(w) l_1 ; ... ; sqrt(w) l_4]`` of normalised parts: dot products = the fused similarity."""
        g = F.normalize(g, dim=-1)
        if local is None:
            return g
        w = self.cfg.local_weight_test if weight is None else weight
        return torch.cat([g, math.sqrt(w) * F.normalize(local, dim=-1).flatten(1)], dim=-1)

    # ------------------------------------------------------------------------------ evaluation vocabulary
    def set_categories(self, classnames: Sequence[str], support=None, text: torch.Tensor | None = None) -> None:
        """The categories test images are routed to, with their support sets.

        Args:
            classnames: the evaluation categories (the router's classes).
            support: ``{name: [3, 3, H, W]}`` per category; with ``category_prompts="none"`` the one
                generic support set ``[3, 3, H, W]`` instead. Needed when the visual prompts are on.
            text: their ``t_c`` ``[C, E]`` when already computed (else :meth:`category_text`).
        """
        names = list(classnames)
        if not names:
            raise ValueError("set_categories needs at least one category")
        shared = None
        if self.cfg.visual_prompts:
            if self.shared_prompts:
                if not isinstance(support, torch.Tensor) or support.dim() != 4 or support.shape[0] != 3:
                    raise ValueError("DP-CLIP with category_prompts='none' needs one generic support set "
                                     "[3, 3, H, W] (1 sketch + 2 photos)")
                shared = support.detach().cpu()
            else:
                missing = [c for c in names if not isinstance(support, dict) or c not in support]
                if missing:
                    raise ValueError(f"no support images for categories {missing[:5]}")
        dev = next(self.parameters()).device
        self._vocab = names
        if text is not None:
            self._vocab_text = text.to(dev)
        else:
            self._vocab_text = self.category_text(names).to(dev) if self.text is not None else None
        self._support = {c: support[c].detach().cpu() for c in names} if isinstance(support, dict) else {}
        self._shared_support = shared
        self._cache = None

    @property
    def categories(self) -> list[str]:
        """The prepared evaluation categories (:meth:`prepare_eval` / :meth:`set_categories`), in the
        order of :meth:`route`'s indices and of the rows of :meth:`prepared_params`."""
        return list(self._vocab)

    @torch.no_grad()
    def route_items(self, items, loader, text: torch.Tensor | None = None, enough: int | None = None,
                    chunk: int = 256) -> list[int]:
        """Routed category index (:meth:`route`) of every item, in order, loaded in chunks.

        Args:
            items: dataset items; ``loader.batch(items)`` gives their images.
            loader: an :class:`~sbirlab.train.data.ImageLoader` (anything with ``batch(items)``).
            text: the categories' ``t_c`` (default the prepared categories', :attr:`categories`).
            enough: stop after the chunk where every category has at least ``enough`` items (the rest
                is not needed for a support set); ``None`` routes all items.
            chunk: images per forward.
        """
        text = self._vocab_text if text is None else text
        if text is None:
            raise RuntimeError("dp-clip: no categories to route to; call prepare_eval / set_categories")
        dev = next(self.parameters()).device
        out: list[int] = []
        counts = torch.zeros(len(text), dtype=torch.long)
        for i in range(0, len(items), chunk):
            r = self.route(loader.batch(items[i:i + chunk]).to(dev), text).cpu()
            out += r.tolist()
            counts += torch.bincount(r, minlength=len(text))
            if enough is not None and bool((counts >= enough).all()):
                break
        return out

    def routed_labels(self, items, loader, chunk: int = 256) -> list[str]:
        """The prepared category each item is routed to, by name (compare with ``item.label``)."""
        return [self._vocab[j] for j in self.route_items(items, loader, chunk=chunk)]

    def _route_items(self, items, loader, text: torch.Tensor, enough: int = 3, chunk: int = 256) -> list[int]:
        """Routed category of the leading ``items``, in order, read in chunks until every category has
        ``enough`` of them (the rest is not needed for a support set) or the items run out."""
        return self.route_items(items, loader, text, enough, chunk)

    def prepare_eval(self, queries, gallery, loader) -> None:
        """Build the evaluation vocabulary from the evaluated items (see the module docstring).

        Categories = the class names of ``queries`` and ``gallery`` (the test vocabulary). Support set of
        a category (:func:`support_rows`): at category level its first sketch (queries) and first two
        photos (gallery) *routed* to it by the frozen CLIP, no label read (a category nothing is routed to
        gets the generic support set); in FG its first sketch and photos by category (the category is
        given in FG). ``category_prompts="none"``: one generic support set, the first query sketch and
        the first two gallery photos.
        """
        if not self.needs_category:
            return
        queries, gallery = list(queries), list(gallery)
        names = sorted({i.label for i in queries} | {i.label for i in gallery})
        text = self.category_text(names) if self.text is not None else None
        if not self.cfg.visual_prompts:
            self.set_categories(names, None, text)
            return
        generic = support_rows([0] * min(3, len(queries)), [0] * min(3, len(gallery)), 0)

        def load(rows):
            return loader.batch([(queries if m == "sketch" else gallery)[i] for m, i in rows])  # [3, 3, H, W]

        if self.shared_prompts:
            self.set_categories(names, load(generic), text)
            return
        if self.setting == "fg":  # the category is given (FG protocol): each category's own first items
            pos = {c: k for k, c in enumerate(names)}
            sk, ph = [pos[i.label] for i in queries], [pos[i.label] for i in gallery]
        else:  # category level: the items the frozen router assigns to the category, never their labels
            if text is None:
                raise NotImplementedError("DP-CLIP's routing needs a CLIP text tower")
            sk, ph = self._route_items(queries, loader, text), self._route_items(gallery, loader, text)
        support = {c: load(support_rows(sk, ph, k) or generic) for k, c in enumerate(names)}
        self.set_categories(names, support, text)

    def embedding_cache_key(self) -> str:
        """A digest of the state embeddings depend on outside ``state_dict()``: how categories are assigned
        (``category_prompts``, setting), the evaluation categories, their support images (or the generic
        one) and the pristine LayerNorms of the router (for embedding caches,
        :func:`sbirlab.analysis.embed_cached`)."""
        import hashlib

        h = hashlib.sha1(f"category_prompts={self.cfg.category_prompts}|{self.setting}|".encode())
        h.update("|".join(self._vocab).encode())
        tensors = [*(self._support[c] for c in self._vocab if c in self._support),
                   *([self._shared_support] if self._shared_support is not None else []),
                   *(self._ln_orig[k] for k in sorted(self._ln_orig))]
        for t in tensors:
            h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def _param_version(self) -> int:
        return sum(p._version for p in self.parameters() if p.requires_grad)

    def prepared_params(self):
        """Prompts ``[C, L, K, D]`` and scales ``[C, L, S]`` of the prepared categories (each ``None`` when
        its module is off), one row per category of :attr:`categories`, or ``[1, ...]`` the shared set
        with ``category_prompts="none"``. Cached; rebuilt whenever a parameter changed. Rows are picked
        per image by :meth:`category_index`."""
        if not self._vocab:
            raise RuntimeError("dp-clip: no categories to encode test images with; call "
                               "method.prepare_eval(queries, gallery, loader) or method.set_categories(...)")
        version = (self._param_version(), self.training)
        if self._cache is None or self._cache[0] != version:
            dev = next(self.parameters()).device
            text = self._vocab_text
            if self.shared_prompts:
                support = self._shared_support[None].to(dev) if self.cfg.visual_prompts else None
                text = _mean_text(text) if text is not None else None
            else:
                support = torch.stack([self._support[c] for c in self._vocab]).to(dev) if self.cfg.visual_prompts else None
            with torch.no_grad():
                prompts, scales = self.category_params(text, support)
            self._cache = (version, prompts, scales)
        return self._cache[1], self._cache[2]

    @torch.no_grad()
    def route(self, images: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        """Category index of each image: the original CLIP's zero-shot class (pristine LayerNorms).

        Args:
            images: ``[B, 3, H, W]``.
            text: ``[C, E]`` the categories' ``t_c``; default the evaluation vocabulary's (training uses
                the training classes', :attr:`train_text`).
        """
        text = self._vocab_text if text is None else text
        if text is None or not len(text):
            raise RuntimeError("dp-clip: routing needs the categories' text (call prepare_eval / set_categories; "
                               "training needs the training classes and a CLIP text tower)")
        from torch.func import functional_call

        orig = {k: v.to(images.device) for k, v in self._ln_orig.items()}
        feats = functional_call(self.clip.visual, orig, (images,), strict=False)
        return (F.normalize(feats.float(), dim=-1) @ text.float().to(images.device).T).argmax(dim=1)

    def category_index(self, images: torch.Tensor, labels=None) -> torch.Tensor:
        """``[B]`` row of :meth:`prepared_params` each image is embedded with.

        Args:
            images: ``[B, 3, H, W]``.
            labels: ``None`` (routed by :meth:`route`), category names or indices into :attr:`categories`
                (the given categories of the paper's FG protocol). Ignored with ``category_prompts="none"``
                (every image row 0).

        Raises:
            KeyError: a label is not a prepared category.
        """
        if self.shared_prompts:  # one prompt set: no category to resolve
            return torch.zeros(len(images), dtype=torch.long, device=images.device)
        if labels is None:
            return self.route(images)
        if isinstance(labels, torch.Tensor):
            return labels.to(images.device).long()
        pos = {c: i for i, c in enumerate(self._vocab)}
        unknown = sorted({c for c in labels if c not in pos})
        if unknown:
            raise KeyError(f"labels {unknown[:5]} are not in the prepared categories")
        return torch.tensor([pos[c] for c in labels], device=images.device)

    # ------------------------------------------------------------------------------ SBIRMethod API
    def category_features(self, images: torch.Tensor, labels=None, local: bool | None = None):
        """:meth:`features` of test images with their categories' prompts and scales (:meth:`category_index`):
        global ``[B, E]`` and local ``[B, 4, E]`` (or ``None``), unnormalised."""
        prompts = scales = None
        if self.needs_category:
            idx = self.category_index(images, labels)
            p, s = self.prepared_params()
            prompts = p[idx] if p is not None else None
            scales = s[idx] if s is not None else None
        return self.features(images, prompts, scales, self.cfg.patch_matching if local is None else local)

    def encode(self, images, modality, labels=None):
        g, local = self.category_features(images, labels)
        return self.fuse(g, local)

    @torch.no_grad()
    def embed_items(self, items, modality: str, loader, labels: bool = False, chunk: int = 256) -> torch.Tensor:
        """Normalised embeddings ``[N, 5E]`` (or ``[N, E]``) of dataset items, on the CPU, in chunks.

        Args:
            items: dataset items (sketches for ``modality="sketch"``, photos for ``"photo"``).
            loader: anything with ``batch(items)``.
            labels: ``False``: routed categories (sbirlab's protocol); ``True``: each item's own label
                (the paper's FG protocol, the category given).
        """
        if modality not in ("sketch", "photo"):
            raise ValueError(f"modality must be 'sketch' or 'photo', got {modality!r}")
        dev = next(self.parameters()).device
        enc = self.encode_sketch if modality == "sketch" else self.encode_photo
        out = [enc(loader.batch(items[i:i + chunk]).to(dev), [x.label for x in items[i:i + chunk]] if labels else None).cpu()
               for i in range(0, len(items), chunk)]
        return torch.cat(out) if out else torch.zeros(0, 0)

    def encode_sketch(self, images, labels=None):
        """Normalised sketch embeddings; ``labels`` (category names or vocabulary indices) skip the routing."""
        return F.normalize(self.encode(images, "sketch", labels), dim=-1)

    def encode_photo(self, images, labels=None):
        """Normalised photo embeddings; ``labels`` (category names or vocabulary indices) skip the routing."""
        return F.normalize(self.encode(images, "photo", labels), dim=-1)

    def train(self, mode: bool = True):
        self._cache = None
        return super().train(mode)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The trainable tensors plus the pristine LayerNorms routing uses (``_ln_orig/<name>``).

        LayerNorm tuning changes the backbone in place, so a method rebuilt on a backbone that was
        trained before would copy tuned LayerNorms as its "original" ones; the checkpoint restores them.
        """
        return {**super().trainable_state_dict(), **{f"_ln_orig/{k}": v.clone() for k, v in self._ln_orig.items()}}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        orig = {k.split("/", 1)[1]: v for k, v in state.items() if k.startswith("_ln_orig/")}
        super().load_trainable_state_dict({k: v for k, v in state.items() if not k.startswith("_ln_orig/")})
        for k, v in orig.items():
            if k not in self._ln_orig:
                raise KeyError(f"{self.name}: unknown LayerNorm {k!r} in the state")
            self._ln_orig[k] = v.detach().clone()
        self._cache = None

    def _batch_support(self, batch: dict, cats: torch.Tensor) -> torch.Tensor:
        """``[U, 3, 3, H, W]``: per category of the batch its first sketch and first two positive photos."""
        y = batch["label"]
        out = []
        for c in cats.tolist():
            rows = (y == c).nonzero().flatten().tolist()
            out.append(torch.stack([batch["sketch"][rows[0]], batch["photo"][rows[0]],
                                    batch["photo"][rows[1] if len(rows) > 1 else rows[0]]]))
        return torch.stack(out)

    def _train_category_params(self, batch: dict):
        """Per-image prompts and scales of a training batch: ``((sketch prompts, sketch scales), (photo
        prompts, photo scales))``, each ``[B, ...]`` or ``None`` (see :attr:`training_category`).

        ``"label"`` (FG): every pair gets its given category's (support = the category's first sketch and
        first two positive photos, :meth:`_batch_support`). ``"routed"`` (category level): every sketch and
        every photo gets the category the frozen CLIP routes it to among the training classes, whose
        support set is the first sketch and first two photos routed to it (:func:`support_rows`); the
        labels are never read. ``"none"``: one set for all, from the batch's first sketch and first two
        photos and the training classes' mean ``t_c``.
        """
        cfg, y = self.cfg, batch["label"]
        sketch, photo = batch["sketch"], batch["photo"]
        B = len(y)
        source = self.training_category
        need_text = cfg.text_scaling != "none" or source == "routed"
        if need_text and not len(self.train_text):
            raise RuntimeError(f"dp-clip ({source}): needs the training classes' text t_c (pass classnames and "
                               "a backbone with a CLIP text tower)")
        if source == "label":
            cats, inv = y.unique(return_inverse=True)
            inv_s = inv_p = inv
            support = self._batch_support(batch, cats) if cfg.visual_prompts else None
            text = self.train_text[cats] if cfg.text_scaling != "none" else None
        elif source == "none":
            inv_s = inv_p = torch.zeros(B, dtype=torch.long, device=y.device)
            support = torch.stack([sketch[0], photo[0], photo[min(1, B - 1)]])[None] if cfg.visual_prompts else None
            text = _mean_text(self.train_text) if cfg.text_scaling != "none" else None
        else:  # routed: the frozen CLIP's zero-shot guess over the training classes, label-free
            routed = self.route(torch.cat([sketch, photo]), self.train_text)  # [2B]
            cats, inv = routed.unique(return_inverse=True)
            inv_s, inv_p = inv[:B], inv[B:]
            support = None
            if cfg.visual_prompts:
                rs, rp = inv_s.tolist(), inv_p.tolist()
                images = {"sketch": sketch, "photo": photo}
                support = torch.stack([torch.stack([images[m][i] for m, i in support_rows(rs, rp, k)])
                                       for k in range(len(cats))])  # [U, 3, 3, H, W]
            text = self.train_text[cats] if cfg.text_scaling != "none" else None
        p_c, s_c = self.category_params(text, support)

        def take(t, idx):
            return t[idx.to(t.device)] if t is not None else None

        return (take(p_c, inv_s), take(s_c, inv_s)), (take(p_c, inv_p), take(s_c, inv_p))

    def _terms(self, s, p, n) -> torch.Tensor:
        """Per-triplet ``global + local_weight_train * sum local`` triplet losses ``[B]``."""
        (sg, sl), (pg, pl), (ng, nl) = s, p, n
        m = self.cfg.margin
        t = triplet_loss(sg, pg, ng, m, reduction="none")
        if sl is not None:
            t = t + self.cfg.local_weight_train * sum(
                triplet_loss(sl[:, i], pl[:, i], nl[:, i], m, reduction="none") for i in range(sl.shape[1]))
        return t

    def loss(self, batch):
        y = batch["label"]
        (sk_prompts, sk_scales), (prompts, scales) = (None, None), (None, None)
        if self.needs_category:
            (sk_prompts, sk_scales), (prompts, scales) = self._train_category_params(batch)
        local = self.cfg.patch_matching
        s = self.features(batch["sketch"], sk_prompts, sk_scales, local)
        p = self.features(batch["photo"], prompts, scales, local)
        # in-batch candidates: the positives, at the training distance (global + 0.1 sum local)
        with torch.no_grad():
            dist = pairwise_cosine_distance(s[0].float(), p[0].float())
            if local:
                dist = dist + self.cfg.local_weight_train * sum(
                    pairwise_cosine_distance(s[1][:, i].float(), p[1][:, i].float()) for i in range(4))
        progress = float(batch["progress"]) if "progress" in batch else 0.0
        w = curriculum_weight(progress, self.cfg.negatives, self.cfg.curriculum_stages, self.cfg.curriculum_step)
        rand, hard, has = select_negatives(dist, y, batch.get("photo_index"), self.setting)
        if not bool(has.all()):
            if self.setting != "fg":
                raise ValueError("dp-clip (zs): a batch with a single class has no in-batch negatives; "
                                 "use classes_per_batch >= 2")
            # FG anchors without another instance in the batch: the sampled negative (same category, so
            # the positive photo's prompts and scales)
            miss = (~has).nonzero().flatten()
            pm = prompts[miss] if prompts is not None else None
            sm = scales[miss] if scales is not None else None
            extra = self.features(batch["photo_neg"][miss], pm, sm, local)
            base = len(y)
            p = (torch.cat([p[0], extra[0]]), torch.cat([p[1], extra[1]]) if local else None)
            rand, hard = rand.clone(), hard.clone()
            rand[miss] = hard[miss] = base + torch.arange(len(miss), device=rand.device)
        pos = (p[0][:len(y)], p[1][:len(y)] if local else None)

        def pick(idx):
            return p[0][idx], (p[1][idx] if local else None)

        logs = {"hard_weight": w}
        total = 0.0
        if w < 1.0:
            l_rand = self._terms(s, pos, pick(rand)).mean()
            logs["triplet_random"] = l_rand.item()
            total = total + (1.0 - w) * l_rand
        if w > 0.0:
            l_hard = self._terms(s, pos, pick(hard)).mean()
            logs["triplet_hard"] = l_hard.item()
            total = total + w * l_hard
        logs["triplet"] = logs["loss"] = float(total.item())
        return total, logs
