"""The shared skeleton of every SBIR method: a frozen CLIP, a prompt learner, a loss.

Done once here and shared by all methods (as CoOp splits text encoder / prompt learner / wrapper):

* the backbone is frozen (``requires_grad_(False)``, eval mode) unless a method unfreezes parts of it
  on purpose (B-FT, CLIP-AT's LayerNorms), and the prompted encoders
  (:mod:`sbirlab.models.prompts`) run open_clip's own modules;
* a method only defines its parameters (:meth:`SBIRMethod.build`), how an image of each modality is
  encoded (:meth:`SBIRMethod.encode`) and, when it differs from the default triplet (+ optional
  classification) loss, :meth:`SBIRMethod.loss`;
* only trainable tensors reach the optimiser, the count is logged, and checkpoints hold only them;
* the plumbing every method shares lives here, once: LayerNorm tuning of the image tower
  (:meth:`SBIRMethod.tune_layernorms`, its own learning-rate group ``lr_ln`` in
  :meth:`SBIRMethod.param_groups`), the triplet (+ classification) loss (:meth:`SBIRMethod.loss`,
  with :meth:`SBIRMethod.classification_text` and :meth:`SBIRMethod.extra_losses` as the hooks a
  method fills), and negative mining (:func:`valid_negatives`, :func:`select_negatives`,
  :meth:`SBIRMethod.negatives`). Pair-consistent augmentation (a sketch and its photo share one flip /
  shift draw) is the data side's (:mod:`sbirlab.train.data`), for every method alike.

A training batch is a dict (see :mod:`sbirlab.train.data`): ``sketch``, ``photo`` (the positive:
same class for ``setting="zs"``, the paired photo for ``"fg"``), ``photo_neg`` (another class /
another photo of the same class), ``label`` and ``label_neg`` (class ids into ``classnames``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ...config import from_dict
from ..losses import classification_loss, gather_rows, pairwise_cosine_distance, triplet_loss
from ..prompts import PromptedTextEncoder, PromptedVisionEncoder

log = logging.getLogger(__name__)

SETTINGS = ("zs", "fg")


@dataclass
class MethodConfig:
    """Hyper-parameters every method has. Methods extend it with their own fields.

    Attributes:
        lr: learning rate of the method's new parameters (prompts, heads).
        margin: triplet margin ``mu`` on cosine distance (docs/methods.md §4.3: 0.3).
        lambda_cls: weight of the classification loss against class text embeddings (0 = off).
        template: text template of the class embeddings.
        negatives: ``"random"`` (the papers: the sampled negative photo) or ``"batch-hard"`` (the
            closest valid photo among all photos of the batch, positives and negatives: another class
            in ``zs``, another instance of the same class in ``fg``). DP-CLIP's curriculum moves from
            the first to the second. The ``cpu`` preset uses random negatives (batch-hard collapsed the
            triplet-only baselines on world v2; docs/methods.md §0.8); the ``ci`` smoke preset uses batch-hard.
        prompt_init: initialisation of learnt prompt tokens (B-Cond, B-IP, B-MM, B-Deep, CLIP-AT):
            ``"normal-0.02"`` (N(0, 0.02^2), CoOp's context init; sbirlab's default), ``"xavier-uniform"``
            (VPT's official code: U(-v, v), v = sqrt(6 / (3 * patch_area + D)) for visual prompts,
            sqrt(6 / D) for text ones) or ``"normal-1"`` (unscaled ``torch.randn``, as public CLIP
            prompt-learning SBIR code such as ClipPrompt does). See :data:`PROMPT_INITS`. Chosen on the **validation** (held-out seen)
            classes, CLIP-AT ZS, world v2 with the doodle-pretrained tiny CLIP, cpu preset, seed 0:
            validation mAP@all 0.795 (normal-0.02), 0.787 (xavier-uniform), 0.746 (normal-1); the
            large init moves the prompts far from the token statistics a small model was trained on.
    """

    lr: float = 1e-3
    margin: float = 0.3
    lambda_cls: float = 0.0
    template: str = "a photo of a {}."
    negatives: str = "random"
    prompt_init: str = "normal-0.02"


#: the prompt initialisations :attr:`MethodConfig.prompt_init` accepts
PROMPT_INITS = ("normal-0.02", "xavier-uniform", "normal-1")


def layernorm_parameters(visual: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Every LayerNorm parameter of the image tower, by module type (ln_pre, ln_1/ln_2 of each block, ln_post)."""
    out = []
    for mname, mod in visual.named_modules():
        if isinstance(mod, nn.LayerNorm):
            out += [(f"{mname}.{n}", p) for n, p in mod.named_parameters(recurse=False)]
    return out


def valid_negatives(labels: torch.Tensor, instances: torch.Tensor, cand_labels: torch.Tensor,
                    cand_instances: torch.Tensor, setting: str) -> torch.Tensor:
    """``[B, N]`` bool: which candidates are valid negatives of each anchor.

    ``zs``: another class. ``fg``: the same class, another instance (the paired photo is the positive).
    """
    if setting == "fg":
        return (cand_labels[None, :] == labels[:, None]) & (cand_instances[None, :] != instances[:, None])
    return cand_labels[None, :] != labels[:, None]


def select_negatives(dist: torch.Tensor, labels: torch.Tensor, instances: torch.Tensor | None, setting: str,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """In-batch negatives for triplets whose candidates are the batch's positive photos (DP-CLIP, SpLIP).

    Args:
        dist: ``[B, B]`` anchor-to-candidate distances (candidate ``j`` = the positive photo of anchor ``j``).
        labels: ``[B]`` class of every anchor (and of its positive).
        instances: ``[B]`` instance id of every positive photo (FG), or ``None`` (each position its own).
        setting: ``"zs"``: a valid negative has another class; ``"fg"``: the same class, another instance.
        generator: for the random choice (default: torch's global generator).

    Returns:
        ``(random_idx, hard_idx, has_valid)``: ``[B]`` indices of a uniformly drawn valid candidate and
        of the closest valid candidate, and ``[B]`` bool; rows without a valid candidate point at 0.
    """
    B = dist.shape[0]
    y = labels.to(dist.device)
    inst = instances.to(dist.device) if instances is not None else torch.arange(B, device=dist.device)
    valid = valid_negatives(y, inst, y, inst, setting)
    has = valid.any(dim=1)
    hard = dist.detach().masked_fill(~valid, float("inf")).argmin(dim=1)
    u = torch.rand(B, B, generator=generator, device=generator.device if generator is not None else "cpu")
    rand = u.to(dist.device).masked_fill(~valid, -1.0).argmax(dim=1)
    return torch.where(has, rand, 0), torch.where(has, hard, 0), has


def config_from_dict(cls, d: dict | None):
    """Build config dataclass ``cls`` from ``d``; unknown keys raise (:func:`sbirlab.config.from_dict`)."""
    return from_dict(cls, d)


class SBIRMethod(nn.Module):
    """Base class. Subclasses set ``name``, ``Config`` and implement :meth:`build` and :meth:`encode`."""

    name: ClassVar[str] = "base"
    Config: ClassVar[type] = MethodConfig
    settings: ClassVar[tuple[str, ...]] = SETTINGS
    #: whether :meth:`encode` needs the class text embeddings (built once at construction)
    uses_text: ClassVar[bool] = False

    def __init__(self, clip: nn.Module, tokenizer, classnames, setting: str = "zs", **cfg):
        super().__init__()
        if setting not in self.settings:
            raise ValueError(f"method {self.name!r} supports settings {self.settings}, got {setting!r}")
        self.setting = setting
        self.cfg = config_from_dict(self.Config, cfg)
        self.clip = clip
        self.clip.requires_grad_(False)
        self.clip.eval()
        self.tokenizer = tokenizer
        self.classnames = list(classnames)
        self.visual = PromptedVisionEncoder(clip.visual)
        self.text = PromptedTextEncoder(clip) if hasattr(clip, "token_embedding") or hasattr(clip, "text") else None
        need_text = self.uses_text or self.cfg.lambda_cls > 0
        if need_text and self.classnames:
            self.register_buffer("class_text", self.frozen_text_features(self.classnames), persistent=False)
        else:
            self.class_text = None
        self.build()
        n_train = sum(p.numel() for p in self.parameters() if p.requires_grad)
        n_all = sum(p.numel() for p in self.parameters())
        log.info("%s (%s): %d trainable parameters of %d (%.3f%%)", self.name, setting, n_train, n_all,
                 100.0 * n_train / max(1, n_all))

    # -- to implement ------------------------------------------------------------------------
    def build(self) -> None:
        """Create the method's parameters (and unfreeze backbone parts if the method trains them)."""

    def encode(self, images: torch.Tensor, modality: str) -> torch.Tensor:
        """Unnormalised embedding ``[B, E]`` of ``images`` of ``modality`` (``"sketch"`` / ``"photo"``)."""
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------
    @property
    def width(self) -> int:
        return self.visual.width

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.clip.logit_scale.exp().detach()

    @torch.no_grad()
    def frozen_text_features(self, classnames, template: str | None = None) -> torch.Tensor:
        """L2-normalised frozen text embeddings of ``template`` filled with each class name."""
        template = template or self.cfg.template
        dev = next(self.clip.parameters()).device
        tok = self.tokenizer([template.format(c.replace("_", " ")) for c in classnames]).to(dev)
        return F.normalize(self.clip.encode_text(tok).float(), dim=-1)

    def new_prompt(self, *shape: int, visual: bool = True) -> nn.Parameter:
        """A learnt prompt tensor of ``shape`` (last dim = token width), initialised per ``cfg.prompt_init``.

        ``"normal-0.02"`` draws ``torch.randn(*shape) * 0.02`` (the same draws as before the option
        existed, so runs made with it are unchanged).
        """
        mode = self.cfg.prompt_init
        if mode == "normal-0.02":
            return nn.Parameter(torch.randn(*shape) * 0.02)
        if mode == "normal-1":
            return nn.Parameter(torch.randn(*shape))
        if mode == "xavier-uniform":
            conv = getattr(self.clip.visual, "conv1", None)
            area = int(conv.kernel_size[0] * conv.kernel_size[1]) if visual and conv is not None else 0
            v = (6.0 / (3 * area + shape[-1])) ** 0.5 if visual else (6.0 / shape[-1]) ** 0.5
            return nn.Parameter(torch.empty(*shape).uniform_(-v, v))
        raise ValueError(f"prompt_init must be one of {', '.join(PROMPT_INITS)}; got {mode!r}")

    def encode_sketch(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised sketch embeddings ``[B, E]``."""
        return F.normalize(self.encode(images, "sketch"), dim=-1)

    def encode_photo(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised photo embeddings ``[B, E]``."""
        return F.normalize(self.encode(images, "photo"), dim=-1)

    def classification_text(self) -> torch.Tensor | None:
        """The class text embeddings ``[C, E]`` of the classification loss (default: the frozen ones;
        B-MM returns its prompted ones). ``None`` switches the loss off."""
        return self.class_text

    def extra_losses(self, batch: dict, s: torch.Tensor, p: torch.Tensor) -> list[tuple[str, float, torch.Tensor]]:
        """A method's own loss terms ``(log name, weight, value)``, added after triplet and classification
        (CLIP-AT FG: patch shuffling, f-divergence). ``s`` / ``p``: the batch's normalised sketch and
        positive photo embeddings."""
        return []

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """``L_tri + lambda_cls * L_cls + sum(weight * extra)``. Returns (loss, logs).

        ``L_tri``: cosine triplet with margin ``cfg.margin`` and the negatives of :meth:`negatives`;
        ``L_cls``: cross-entropy of sketches and photos against :meth:`classification_text` at CLIP's
        temperature (when ``lambda_cls > 0``); then :meth:`extra_losses`.
        """
        s = self.encode_sketch(batch["sketch"])
        p = self.encode_photo(batch["photo"])
        n = self.encode_photo(batch["photo_neg"])
        l_tri = triplet_loss(s, p, self.negatives(s, p, n, batch), self.cfg.margin)
        logs = {"triplet": l_tri.item()}
        total = l_tri
        text = self.classification_text() if self.cfg.lambda_cls > 0 else None
        if text is not None:
            y = batch["label"]
            l_cls = classification_loss(s, y, text, self.logit_scale) + \
                classification_loss(p, y, text, self.logit_scale)
            logs["cls"] = l_cls.item()
            total = total + self.cfg.lambda_cls * l_cls
        for name, weight, value in self.extra_losses(batch, s, p):
            total = total + weight * value
            logs[name] = value.item()
        logs["loss"] = total.item()
        return total, logs

    def negatives(self, s: torch.Tensor, p: torch.Tensor, n: torch.Tensor, batch: dict) -> torch.Tensor:
        """The negative embeddings of the triplets, per ``cfg.negatives`` (see :class:`MethodConfig`).

        ``batch-hard`` picks, for every sketch, the photo embedding (among ``p`` and ``n`` of the whole
        batch) at the smallest cosine distance that is a valid negative; a sketch without one keeps its
        sampled negative. Under DDP the candidates are the photos of the global batch (all ranks).
        Falls back to ``n`` when the batch lacks the label / index keys.
        """
        mode = self.cfg.negatives
        if mode == "random":
            return n
        if mode != "batch-hard":
            raise ValueError(f"negatives must be 'random' or 'batch-hard', got {mode!r}")
        keys = ("label", "label_neg", "photo_index", "photo_neg_index")
        if any(k not in batch for k in keys):
            return n
        y, yn, i, i_neg = (batch[k].to(s.device) for k in keys)
        p_all, n_all, y_all, yn_all, i_all, ineg_all = gather_rows(p, n, y, yn, i, i_neg)
        cand = torch.cat([p_all, n_all])
        valid = valid_negatives(y, i, torch.cat([y_all, yn_all]), torch.cat([i_all, ineg_all]), self.setting)
        with torch.no_grad():
            d = pairwise_cosine_distance(s.float(), cand.float()).masked_fill(~valid, float("inf"))
            j = d.argmin(dim=1)
        has = valid.any(dim=1)
        return torch.where(has[:, None], cand[j], n)

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        return self.loss(batch)

    def train(self, mode: bool = True):
        """Train mode for the method's own modules; the frozen backbone stays in eval mode."""
        super().train(mode)
        self.clip.eval()
        self._train_backbone_parts(mode)
        return self

    def _train_backbone_parts(self, mode: bool) -> None:
        """Override when parts of the backbone train (B-FT puts the image tower in train mode)."""

    def trainable_named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for n, p in self.named_parameters() if p.requires_grad]

    #: the name of the optimiser group of the method's new parameters (in logs and optimiser state)
    new_params_group: ClassVar[str] = "all"

    def tune_layernorms(self) -> None:
        """Train every LayerNorm of the image tower (CLIP-AT, DP-CLIP, SpLIP), at ``cfg.lr_ln``
        (:meth:`param_groups`). Call from :meth:`build` when ``cfg.tune_ln``."""
        for _, p in layernorm_parameters(self.clip.visual):
            p.requires_grad_(True)

    def layernorms_tuned(self) -> bool:
        return bool(getattr(self.cfg, "tune_ln", False))

    def param_groups(self) -> list[dict]:
        """Optimiser groups: every trainable tensor at ``cfg.lr``; with tuned LayerNorms
        (:meth:`tune_layernorms`), the method's new tensors (group :attr:`new_params_group`) at
        ``cfg.lr`` and the LayerNorms (group ``layernorm``) at ``cfg.lr_ln``."""
        if not self.layernorms_tuned():
            return [{"params": [p for _, p in self.trainable_named_parameters()], "lr": self.cfg.lr,
                     "name": self.new_params_group}]
        ln = layernorm_parameters(self.clip.visual)
        ids = {id(p) for _, p in ln}
        new = [p for _, p in self.trainable_named_parameters() if id(p) not in ids]
        return [{"params": new, "lr": self.cfg.lr, "name": self.new_params_group},
                {"params": [p for _, p in ln], "lr": self.cfg.lr_ln, "name": "layernorm"}]

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Only what training changes (prompts, heads, unfrozen backbone tensors): a few KB to MB."""
        names = {n for n, _ in self.trainable_named_parameters()}
        return {k: v.detach().cpu().clone() for k, v in self.state_dict().items() if k in names}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        own = dict(self.named_parameters())
        missing = [k for k, _ in self.trainable_named_parameters() if k not in state]
        unknown = [k for k in state if k not in own]
        if missing or unknown:
            raise KeyError(f"{self.name}: trainable state mismatch; missing {missing[:5]}, unknown {unknown[:5]}")
        with torch.no_grad():
            for k, v in state.items():
                own[k].copy_(v.to(own[k].device, own[k].dtype))
