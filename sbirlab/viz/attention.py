"""Attention maps of a prompted CLIP ViT: every layer and head, CLS and prompt tokens, rollout, overlays.

Where the maps come from. Every residual block of open_clip's ViT calls its attention with
``need_weights=False``, so no weights exist after an ordinary forward. :func:`record_attention`
registers a forward pre-hook on each block of ``visual.transformer.resblocks`` that recomputes the
block's softmax attention from its input with :func:`sbirlab.models.prompts.attention_weights` (the
block's own ``ln_1`` and projections; open_clip is wrapped, never changed). Hooks see whatever
sequence the block receives, so the same code works for any method and any prompt form: shallow
prompts (CLIP-AT, B-IP), deep prompts replaced before every block (B-Deep, MaPLe), per-sample
prompts (B-Cond), and prompts computed on the fly during the forward (DP-CLIP's category-specific
prompts), without knowing how the method builds them. Blocks that the prompted encoder runs with a
:class:`~sbirlab.models.prompts.BlockEdit` (DP-CLIP's text-guided scaling edits the QKV projection and
the MLP of every block) are not called as modules; the recorder sees them through
:func:`sbirlab.models.prompts.observe_block_edits` and recomputes their attention *with* the edit, so
DP-CLIP's maps are those of its scaled blocks. A method that runs the tower several times per call
(B-Cond encodes the image once without prompts, then with them; DP-CLIP routes the image with the
frozen CLIP first) produces several *passes*; :class:`AttentionMaps` keeps the last one by default.

Token layout (:mod:`sbirlab.models.prompts`): ``[CLS, patch_1 .. patch_N, prompt_1 .. prompt_K]``;
``N = gh * gw`` patches in row-major order. Maps:

* **from a token** (``direction="from"``): the token's attention row restricted to the patches, where
  the token *reads* from (CLS: what the embedding is pooled from; a prompt token: what it looks at);
* **to a token** (``direction="to"``): the column, how much each patch reads from the token (how much a
  prompt is written into each patch);
* **rollout** (Abnar & Zuidema, *Quantifying Attention Flow in Transformers*, ACL 2020): the product
  over layers of the head-fused attention with the residual added (``0.5 A + 0.5 I``, rows
  renormalised), read at the CLS row. Deep prompts are fresh inputs at every block they replace, so
  their rows are reset to a "prompt" source column there: the rollout row of CLS sums to 1 over
  ``[CLS input, N patches, prompts]`` and its prompt entry says how much of the embedding is attributed
  to prompt tokens rather than to the image.

Overlays upsample an 8 x 8 (or any) map bilinearly to the image and blend a colour map over it.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "AttentionMaps",
    "record_attention",
    "capture_attention",
    "method_attention",
    "encoder_attention",
    "split_layer_prompts",
    "paired_items",
    "mass_summary",
    "rollout",
    "overlay",
    "plot_attention_rows",
    "plot_sketch_photo",
    "plot_layers_heads",
    "ink_mask",
    "mass_on",
]

Head = Union[str, int]


# --------------------------------------------------------------------------------------------------
# capture


def _tower(visual: nn.Module) -> nn.Module:
    """The open_clip ``VisionTransformer`` of ``visual`` (a tower, a PromptedVisionEncoder or a method)."""
    from open_clip.transformer import VisionTransformer

    cand = visual
    for _ in range(4):  # method -> PromptedVisionEncoder -> VisionTransformer
        if isinstance(cand, VisionTransformer):
            return cand
        cand = getattr(cand, "visual", None)
        if cand is None:
            break
    raise TypeError(f"expected an open_clip VisionTransformer, a PromptedVisionEncoder or a method with "
                    f"`.visual`; got {type(visual).__name__}")


@dataclass
class _Recorder:
    """What the hooks collect: per pass, per layer, the attention and the block's input / output prompts."""

    num_layers: int
    passes: list = field(default_factory=list)  # list of list of dicts (one per layer)
    keep_inputs: bool = True
    block_calls: list = field(default_factory=list)  # per layer: forwards of the block itself
    ln1_calls: list = field(default_factory=list)  # per layer: calls of its ln_1 outside our own recompute
    busy: bool = False

    def check_bypass(self) -> None:
        """Raise if some code ran a block's layers without calling the block (nothing was recorded for it)."""
        # every block forward calls its ln_1 once (and the pre-hook discounts that call): a positive
        # count means ln_1 ran outside a block forward
        bad = [l for l, n in enumerate(self.ln1_calls) if n > 0]
        if bad:
            raise RuntimeError(
                f"the forward ran the layers of block(s) {bad} without calling the blocks themselves (a method "
                f"that re-implements the block outside the prompted encoder); their attention cannot be "
                f"recorded from the blocks. Run the changed blocks through PromptedVisionEncoder(..., "
                f"block_edits=...) (sbirlab.models.prompts.BlockEdit, as DP-CLIP does), or use "
                f"encoder_attention() with the method's prompts (see split_layer_prompts)")

    def begin(self, layer: int) -> list:
        if layer == 0 or not self.passes:
            self.passes.append([])
        return self.passes[-1]


@contextlib.contextmanager
def record_attention(visual: nn.Module, keep_tokens: bool = True) -> Iterator[_Recorder]:
    """Context manager: record the attention of every block of ``visual`` during the forwards inside it.

    Args:
        visual: an open_clip ``VisionTransformer``, a :class:`~sbirlab.models.prompts.PromptedVisionEncoder`
            or a method (anything whose ``.visual`` chain leads to the tower).
        keep_tokens: also keep what is needed to tell replaced deep prompts from prompts that flow on
            (the prompt part of each block's input and output; small).

    Yields:
        A recorder; ``recorder.passes[p][l]`` is a dict with ``"attn"`` ``[B, H, T, T]`` (float32, CPU)
        and, with ``keep_tokens``, ``"in_prompts"`` / ``"out_prompts"``.

    Example:
        >>> with record_attention(method) as rec:
        ...     method.encode(images, "sketch")
        >>> maps = AttentionMaps.from_recorder(rec, grid_size=method.visual.grid_size)
    """
    from ..models.prompts import attention_weights, observe_block_edits

    tower = _tower(visual)
    blocks = tower.transformer.resblocks
    rec = _Recorder(len(blocks), keep_inputs=keep_tokens)
    rec.block_calls, rec.ln1_calls = [0] * len(blocks), [0] * len(blocks)
    n_img = 1 + int(np.prod(tower.grid_size))
    handles = []

    def ln1(layer):
        def hook(module, args, out):
            if not rec.busy:
                rec.ln1_calls[layer] += 1
        return hook

    def pre(layer):
        def hook(block, args, kwargs):
            x = args[0] if args else kwargs["x"]
            rec.block_calls[layer] += 1
            rec.busy = True
            try:
                with torch.no_grad():
                    a = attention_weights(block, x, kwargs.get("attn_mask"))
            finally:
                rec.busy = False
            rec.ln1_calls[layer] -= 1  # the block's own ln_1 call (counted next) is not a bypass
            entry = {"attn": a.detach().float().cpu()}
            if keep_tokens:
                entry["in_prompts"] = x[:, n_img:].detach().float().cpu()
            rec.begin(layer).append(entry)
        return hook

    def post(layer):
        def hook(block, args, kwargs, out):
            if keep_tokens and rec.passes and rec.passes[-1]:
                y = out[0] if isinstance(out, tuple) else out
                rec.passes[-1][-1]["out_prompts"] = y[:, n_img:].detach().float().cpu()
        return hook

    def edited(layer, block, x, out, edit, attn_mask):  # a block the encoder ran with a BlockEdit
        rec.block_calls[layer] += 1
        rec.busy = True
        try:
            with torch.no_grad():
                a = attention_weights(block, x, attn_mask, edit)
        finally:
            rec.busy = False
        rec.ln1_calls[layer] -= 1  # the edited run's own ln_1 call (counted already) is not a bypass
        entry = {"attn": a.detach().float().cpu()}
        if keep_tokens:
            entry["in_prompts"] = x[:, n_img:].detach().float().cpu()
            entry["out_prompts"] = out[:, n_img:].detach().float().cpu()
        rec.begin(layer).append(entry)

    try:
        with observe_block_edits(tower.transformer, edited):
            for i, b in enumerate(blocks):
                handles.append(b.register_forward_pre_hook(pre(i), with_kwargs=True))
                handles.append(b.register_forward_hook(post(i), with_kwargs=True))
                if isinstance(getattr(b, "ln_1", None), nn.Module):
                    handles.append(b.ln_1.register_forward_hook(ln1(i)))
            yield rec
    finally:
        for h in handles:
            h.remove()


@dataclass
class AttentionMaps:
    """The attention of one forward pass of a ViT over a batch, with the token layout to read it.

    Attributes:
        attentions: ``L`` tensors ``[B, H, T_l, T_l]`` (rows sum to 1; ``T_l = 1 + N + K_l``).
        grid_size: the patch grid ``(gh, gw)``.
        replaced: per layer, whether the prompt positions entering it were fresh tokens (deep prompts,
            or layer 0) rather than the previous block's outputs.
        images: optional uint8 images ``[B, 3, H, W]`` for overlays.
    """

    attentions: list
    grid_size: tuple
    replaced: list
    images: Optional[torch.Tensor] = None

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_recorder(cls, rec: _Recorder, grid_size, pass_index: int = -1, images=None) -> "AttentionMaps":
        """Build from :func:`record_attention`'s recorder (``pass_index=-1``: the last forward)."""
        rec.check_bypass()
        if not rec.passes:
            raise RuntimeError("no attention was recorded: did the forward inside record_attention() run the "
                               "vision tower?")
        passes = [p for p in rec.passes if len(p) == rec.num_layers]
        if not passes:
            raise RuntimeError(f"no complete pass recorded ({[len(p) for p in rec.passes]} blocks of "
                               f"{rec.num_layers})")
        p = passes[pass_index]
        replaced = [True]
        for l in range(1, len(p)):
            a, b = p[l].get("in_prompts"), p[l - 1].get("out_prompts")
            if a is None or b is None:
                replaced.append(False)
            elif a.shape != b.shape:
                replaced.append(True)
            else:
                replaced.append(a.numel() > 0 and not torch.equal(a, b))
        return cls([e["attn"] for e in p], tuple(int(g) for g in grid_size), replaced, images)

    # -- layout ---------------------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return len(self.attentions)

    @property
    def num_heads(self) -> int:
        return int(self.attentions[0].shape[1])

    @property
    def batch_size(self) -> int:
        return int(self.attentions[0].shape[0])

    @property
    def num_patches(self) -> int:
        return int(self.grid_size[0] * self.grid_size[1])

    @property
    def num_image_tokens(self) -> int:
        """``1 + N`` (CLS and patches)."""
        return 1 + self.num_patches

    def num_prompts(self, layer: int = -1) -> int:
        """Prompt tokens ``K_l`` in the sequence of ``layer``."""
        return int(self.attentions[layer].shape[-1]) - self.num_image_tokens

    def _check(self) -> None:
        for l, a in enumerate(self.attentions):
            if a.dim() != 4 or a.shape[-1] != a.shape[-2] or a.shape[-1] < self.num_image_tokens:
                raise ValueError(f"layer {l}: attention of shape {tuple(a.shape)} does not fit a "
                                 f"{self.grid_size} grid (+ CLS)")

    def __post_init__(self):
        if not self.attentions:
            raise ValueError("AttentionMaps needs at least one layer")
        self._check()

    # -- maps -----------------------------------------------------------------------------------
    def fused(self, layer: int, head: Head = "mean") -> torch.Tensor:
        """``[B, T, T]`` attention of ``layer`` for one head (int) or fused over heads (mean / max / min)."""
        a = self.attentions[layer]
        if isinstance(head, (int, np.integer)):
            if not -a.shape[1] <= head < a.shape[1]:
                raise IndexError(f"head {head} out of range: layer {layer} has {a.shape[1]} heads")
            return a[:, head]
        if head == "mean":
            return a.mean(1)
        if head == "max":
            return a.amax(1)
        if head == "min":
            return a.amin(1)
        raise ValueError(f"head must be an int or 'mean' / 'max' / 'min', got {head!r}")

    def token_index(self, token: Union[str, int], layer: int = -1) -> int:
        """Sequence position of ``"cls"``, ``"prompt:k"`` / ``("prompt", k)``-style names, or an int position."""
        if isinstance(token, (int, np.integer)):
            return int(token)
        if token == "cls":
            return 0
        if isinstance(token, str) and token.startswith("prompt:"):
            k = int(token.split(":", 1)[1])
            K = self.num_prompts(layer)
            if not 0 <= k < K:
                raise IndexError(f"{token!r}: layer {layer} has {K} prompt tokens")
            return self.num_image_tokens + k
        raise ValueError(f"token must be 'cls', 'prompt:<k>' or an int position, got {token!r}")

    def token_map(self, token: Union[str, int] = "cls", layer: int = -1, head: Head = "mean",
                  direction: str = "from") -> torch.Tensor:
        """``[B, gh, gw]`` map between ``token`` and every patch at ``layer``.

        Args:
            token: ``"cls"``, ``"prompt:k"`` (0-based) or a sequence position.
            layer: block index (negative from the end).
            head: an int, or ``"mean"`` / ``"max"`` / ``"min"`` over heads.
            direction: ``"from"``: the token's attention over the patches (its row; the values are the
                probabilities themselves and sum to at most 1); ``"to"``: how much each patch attends to
                the token (its column).
        """
        a = self.fused(layer, head)
        t = self.token_index(token, layer)
        n = self.num_image_tokens
        if direction == "from":
            m = a[:, t, 1:n]
        elif direction == "to":
            m = a[:, 1:n, t]
        else:
            raise ValueError(f"direction must be 'from' or 'to', got {direction!r}")
        return m.reshape(-1, *self.grid_size)

    def cls_map(self, layer: int = -1, head: Head = "mean") -> torch.Tensor:
        """``[B, gh, gw]``: where CLS reads from at ``layer`` (the row pooled into the embedding at the last layer)."""
        return self.token_map("cls", layer, head)

    def prompt_maps(self, layer: int = -1, head: Head = "mean", direction: str = "from") -> torch.Tensor:
        """``[B, K, gh, gw]``: one map per prompt token of ``layer`` (``K = 0`` without prompts)."""
        K = self.num_prompts(layer)
        maps = [self.token_map(f"prompt:{k}", layer, head, direction) for k in range(K)]
        if not maps:
            return torch.zeros(self.batch_size, 0, *self.grid_size)
        return torch.stack(maps, dim=1)

    def rollout(self, head: Head = "mean", residual: float = 0.5, start_layer: int = 0,
                end_layer: Optional[int] = None, return_full: bool = False):
        """Attention rollout of CLS onto the patches (see :func:`rollout`): ``[B, gh, gw]``."""
        return rollout(self, head, residual, start_layer, end_layer, return_full)

    def to(self, dtype=torch.float32) -> "AttentionMaps":
        return AttentionMaps([a.to(dtype) for a in self.attentions], self.grid_size, list(self.replaced),
                             self.images)


def capture_attention(visual: nn.Module, forward: Callable[[], object], grid_size=None, pass_index: int = -1,
                      images=None) -> AttentionMaps:
    """Run ``forward()`` (any code that runs ``visual``'s tower) and return the attention it produced.

    Args:
        visual: the tower, a PromptedVisionEncoder or a method (see :func:`record_attention`).
        forward: a callable without arguments, e.g. ``lambda: method.encode(x, "photo")``; run under
            ``torch.no_grad()``.
        grid_size: the patch grid; default the tower's (images at the model's input size).
        pass_index: which forward of the tower to keep when ``forward`` runs it several times.
        images: uint8 images to keep with the maps (for overlays).
    """
    tower = _tower(visual)
    with record_attention(tower) as rec, torch.no_grad():
        forward()
    return AttentionMaps.from_recorder(rec, grid_size or tower.grid_size, pass_index, images)


def method_attention(method: nn.Module, images: torch.Tensor, modality: str, pass_index: int = -1,
                     images_u8=None, **encode_kwargs) -> AttentionMaps:
    """Attention of ``method.encode(images, modality, **encode_kwargs)`` (any SBIR method with ``.visual``).

    The method's own prompts are used, whatever their form (shallow, deep, per-sample, computed during
    the forward); ``encode_kwargs`` reach methods whose ``encode`` takes more (e.g. a class for
    category-specific prompts).
    """
    if modality not in ("sketch", "photo"):
        raise ValueError(f"modality must be 'sketch' or 'photo', got {modality!r}")
    was = method.training
    method.eval()
    try:
        return capture_attention(method, lambda: method.encode(images, modality, **encode_kwargs),
                                 pass_index=pass_index, images=images_u8)
    finally:
        method.train(was)


def encoder_attention(encoder: nn.Module, images: torch.Tensor, prompts: Optional[torch.Tensor] = None,
                      deep_prompts=None, images_u8=None, block_edits=None) -> AttentionMaps:
    """Attention of a :class:`~sbirlab.models.prompts.PromptedVisionEncoder` with explicit prompts.

    ``prompts`` / ``deep_prompts`` take every form the encoder accepts: ``[K, D]``, per-sample
    ``[B, K, D]`` (category-specific prompts: one set per image), deep ``[J, K, D]`` / ``[B, J, K, D]``,
    a list per layer, or a callable. ``block_edits``: per-layer
    :class:`~sbirlab.models.prompts.BlockEdit` (e.g. DP-CLIP's scales: ``encoder_attention(m.visual, x,
    **m.encoder_inputs(P[idx], S[idx]))``); their attention is recomputed with the edit.
    """
    from ..models.prompts import PromptedVisionEncoder

    enc = encoder if isinstance(encoder, PromptedVisionEncoder) else PromptedVisionEncoder(_tower(encoder))
    return capture_attention(enc, lambda: enc(images, prompts=prompts, deep_prompts=deep_prompts,
                                              block_edits=block_edits),
                             grid_size=(images.shape[-2] // enc.visual.patch_size[0],
                                        images.shape[-1] // enc.visual.patch_size[1]),
                             images=images_u8)


def split_layer_prompts(layer_prompts: torch.Tensor):
    """``(prompts, deep_prompts)`` for :func:`encoder_attention` from one prompt set per layer.

    B-Deep, MaPLe and DP-CLIP hold ``[L, K, D]`` (or per sample / per category ``[B, L, K, D]``) prompts
    whose layer-0 set goes through ``ln_pre`` with the image tokens and whose layer-``l`` sets replace
    the prompt positions before block ``l``; this returns ``(P[..., 0, :, :], [None, P_1, ..., P_{L-1}])``
    in the encoder's conventions. DP-CLIP's category prompts for a batch are
    ``prompts[category_index]`` of its cached ``[U, L, K, D]`` tensor.
    """
    p = layer_prompts
    if p.dim() == 3:
        return p[0], [None, *p[1:].unbind(0)]
    if p.dim() == 4:
        return p[:, 0], [None, *p[:, 1:].unbind(1)]
    raise ValueError(f"layer prompts must be [L, K, D] or [B, L, K, D], got shape {tuple(p.shape)}")


def paired_items(queries: Sequence, gallery: Sequence, n: int, one_per_class: bool = True) -> list:
    """``(sketch, photo)`` pairs of sketches and the gallery photo drawn from the same instance.

    Args:
        queries: sketch items; gallery: photo items (paired by ``item.instance``).
        n: at most this many pairs.
        one_per_class: ``True``: the first sketch of each class (in query order) with its photo, the
            first ``n`` classes; ``False``: ``n`` pairs evenly spread over all pairs (first and last
            included), for statistics.
    """
    by_id = {p.instance: p for p in gallery}
    pairs = [(s, by_id[s.instance]) for s in queries if s.instance in by_id]
    if one_per_class:
        seen, out = set(), []
        for s, ph in pairs:
            if s.label not in seen:
                out.append((s, ph))
                seen.add(s.label)
        return out[:n]
    if not pairs or n <= 0:
        return []
    return [pairs[i] for i in np.linspace(0, len(pairs) - 1, min(n, len(pairs))).astype(int)]


def mass_summary(maps: AttentionMaps, mask) -> dict:
    """Mean share of attention mass on the ``mask`` patches (:func:`mass_on`), per map kind.

    Args:
        maps: the recorded attention of a batch.
        mask: ``[B, gh, gw]`` bool patches of the object (e.g. :func:`ink_mask`).

    Returns:
        ``{"CLS last layer", "rollout", "prompts (from)", "chance"}``: the CLS row of the last layer, the
        rollout, the last layer's prompt rows (mean over prompts; ``None`` without prompts) and the share
        of ``mask`` patches (what a uniform map would score).
    """
    mask = torch.as_tensor(mask)
    pm = maps.prompt_maps()  # [B, K, gh, gw]
    return {"CLS last layer": float(mass_on(maps.cls_map(), mask).mean()),
            "rollout": float(mass_on(maps.rollout(), mask).mean()),
            "prompts (from)": float(mass_on(pm, mask[:, None]).mean()) if pm.shape[1] else None,
            "chance": float(mask.float().mean())}


# --------------------------------------------------------------------------------------------------
# rollout


def rollout(maps: AttentionMaps, head: Head = "mean", residual: float = 0.5, start_layer: int = 0,
            end_layer: Optional[int] = None, return_full: bool = False):
    """Attention rollout (Abnar & Zuidema, ACL 2020) of the CLS token onto the input patches.

    For each layer ``l`` the head-fused attention becomes ``A'_l = (1 - residual) A_l + residual I``
    with rows renormalised, and ``R = A'_L ... A'_1`` tracks how much of every token's output comes
    from every *input* token. Prompt positions that enter a block as fresh tokens (every prompt at the
    first layer; deep prompts wherever they are replaced) are inputs of their own: their rows of ``R``
    are reset to one shared "prompt" source. Hence each row of the full result sums to 1 over
    ``[CLS input, patch_1 .. patch_N, prompts]``.

    Args:
        maps: the recorded attention.
        head: head fusion, ``"mean"`` (Abnar & Zuidema), ``"max"``, ``"min"`` or one head (int).
        residual: weight of the identity (the skip connection); 0.5 as in the paper.
        start_layer, end_layer: roll out blocks ``start_layer .. end_layer - 1`` only.
        return_full: also return the CLS row over all sources ``[B, 1 + N + 1]``.

    Returns:
        ``[B, gh, gw]`` (the patch entries of the CLS row), or ``(map, cls_row)`` with ``return_full``.
    """
    if not 0.0 <= residual <= 1.0:
        raise ValueError(f"residual must be in [0, 1], got {residual}")
    L = maps.num_layers
    end = L if end_layer is None else (L + end_layer if end_layer < 0 else end_layer)  # slice semantics
    if not 0 <= start_layer < end <= L:
        raise ValueError(f"empty layer range [{start_layer}, {end}) of {L} layers")
    n = maps.num_image_tokens
    S = n + 1  # sources: CLS, patches, one shared prompt source
    R = None
    for l in range(start_layer, end):
        A = maps.fused(l, head).double()  # [B, T, T]
        B, T = A.shape[0], A.shape[-1]
        K = T - n
        if R is None or maps.replaced[l] or R.shape[1] != T:
            # fresh prompt rows (or the first rolled-out layer): prompts are a source of their own
            base = torch.zeros(B, T, S, dtype=A.dtype)
            if R is None:
                base[:, :n, :n] = torch.eye(n, dtype=A.dtype)
            else:
                base[:, :n] = R[:, :n]
            base[:, n:, n] = 1.0
            R = base
        A = (1.0 - residual) * A + residual * torch.eye(T, dtype=A.dtype)
        A = A / A.sum(-1, keepdim=True)
        R = A @ R  # [B, T, S]
    cls_row = R[:, 0].float()  # [B, S]
    m = cls_row[:, 1:n].reshape(-1, *maps.grid_size)
    return (m, cls_row) if return_full else m


# --------------------------------------------------------------------------------------------------
# overlays and figures


def _as_u8_hwc(images) -> np.ndarray:
    """uint8 ``[B, H, W, 3]`` from ``[B, 3, H, W]`` / ``[B, H, W, 3]`` tensors or arrays."""
    if hasattr(images, "detach"):
        images = images.detach().cpu().numpy()
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise ValueError(f"images must be [B, 3, H, W] or [B, H, W, 3]; got shape {x.shape}")
    if x.shape[1] in (1, 3) and x.shape[-1] not in (1, 3):
        x = x.transpose(0, 2, 3, 1)
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    if x.dtype != np.uint8:
        if x.min() < 0 or x.max() > 255:
            raise ValueError("images must be uint8 (or floats in [0, 255]); got normalised values? pass the "
                             "loader's uint8 images (ImageLoader.uint8)")
        x = x.round().astype(np.uint8) if x.max() > 1.0 else (x * 255).round().astype(np.uint8)
    return x


def _normalise_maps(maps: np.ndarray, mode: str) -> np.ndarray:
    m = maps.astype(np.float64)
    if mode == "minmax":
        lo = m.min(axis=(-2, -1), keepdims=True)
        hi = m.max(axis=(-2, -1), keepdims=True)
        return (m - lo) / np.maximum(hi - lo, 1e-12)
    if mode == "max":
        return m / np.maximum(m.max(axis=(-2, -1), keepdims=True), 1e-12)
    if mode == "none":
        return np.clip(m, 0.0, 1.0)
    raise ValueError(f"normalise must be 'minmax', 'max' or 'none', got {mode!r}")


def upsample(maps, size) -> np.ndarray:
    """Bilinear upsampling of ``[B, gh, gw]`` maps to ``size = (H, W)``: ``[B, H, W]``."""
    t = torch.as_tensor(np.asarray(maps.detach().cpu() if hasattr(maps, "detach") else maps), dtype=torch.float32)
    if t.dim() == 2:
        t = t[None]
    return F.interpolate(t[:, None], size=tuple(size), mode="bilinear", align_corners=False)[:, 0].numpy()


def overlay(images, maps, alpha: float = 0.55, cmap: str = "inferno", normalise: str = "minmax",
            gray: bool = True) -> np.ndarray:
    """Blend attention ``maps`` ``[B, gh, gw]`` over ``images`` (uint8): ``[B, H, W, 3]`` uint8.

    Args:
        images: uint8 ``[B, 3, H, W]`` or ``[B, H, W, 3]``.
        maps: ``[B, gh, gw]`` (any grid; upsampled bilinearly).
        alpha: weight of the colour map at the map's maximum (the blend weight follows the map, so low
            attention leaves the image visible).
        cmap: matplotlib colour map.
        normalise: per map ``"minmax"`` (default), ``"max"`` or ``"none"`` (values taken as they are).
        gray: show the image in grey under the colour map (colour photos would compete with it).
    """
    import matplotlib

    ims = _as_u8_hwc(images)
    m = np.asarray(maps.detach().cpu() if hasattr(maps, "detach") else maps, dtype=np.float64)
    if m.ndim == 2:
        m = m[None]
    if len(m) != len(ims):
        raise ValueError(f"{len(m)} maps for {len(ims)} images")
    up = _normalise_maps(upsample(m, ims.shape[1:3]), normalise)  # [B, H, W] in [0, 1]
    colors = matplotlib.colormaps[cmap](up)[..., :3]  # [B, H, W, 3]
    base = ims.astype(np.float64) / 255.0
    if gray:
        base = np.repeat(base.mean(-1, keepdims=True), 3, axis=-1)
    w = alpha * (0.35 + 0.65 * up)[..., None]
    out = (1 - w) * base + w * colors
    return (out * 255).round().clip(0, 255).astype(np.uint8)


def _label(x) -> str:
    return str(x).replace("_", " ")


def plot_attention_rows(maps_by_column: dict, images, row_titles: Optional[Sequence[str]] = None,
                        size: float = 1.25, suptitle: str = "", normalise: str = "minmax", cmap: str = "inferno"):
    """One row per image: the image, then one overlay per map column.

    Args:
        maps_by_column: ``{column title: [B, gh, gw] maps}`` (e.g. ``{"CLS": .., "prompt 1": .., "rollout": ..}``).
        images: uint8 images ``[B, 3, H, W]``.
        row_titles: a title per row (shown over the image).
    """
    import matplotlib.pyplot as plt

    ims = _as_u8_hwc(images)
    cols = list(maps_by_column)
    B = len(ims)
    fig, axes = plt.subplots(B, 1 + len(cols), figsize=(size * (1 + len(cols)), (size + 0.25) * B + 0.3),
                             squeeze=False)
    ovs = {c: overlay(ims, maps_by_column[c], normalise=normalise, cmap=cmap) for c in cols}
    for i in range(B):
        axes[i, 0].imshow(ims[i], interpolation="nearest")
        if row_titles is not None:
            axes[i, 0].set_title(_label(row_titles[i]), fontsize=7.5)
        for j, c in enumerate(cols, start=1):
            axes[i, j].imshow(ovs[c][i], interpolation="nearest")
            if i == 0:
                axes[i, j].set_title(c, fontsize=7.5)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if suptitle:
        fig.suptitle(suptitle, fontsize=9.5)
    fig.tight_layout()
    return fig


def plot_sketch_photo(sketch_maps: dict, photo_maps: dict, sketches, photos, labels: Optional[Sequence[str]] = None,
                      size: float = 1.2, suptitle: str = "", normalise: str = "minmax"):
    """Sketches and photos side by side: per row, a sketch with its overlays, then a photo with its overlays.

    Args:
        sketch_maps, photo_maps: ``{column title: [B, gh, gw]}`` with the same titles for both.
        sketches, photos: uint8 images ``[B, 3, H, W]`` (row ``i`` pairs sketch ``i`` with photo ``i``).
        labels: class of each row.
    """
    import matplotlib.pyplot as plt

    if list(sketch_maps) != list(photo_maps):
        raise ValueError(f"sketch and photo maps must have the same columns: {list(sketch_maps)} vs {list(photo_maps)}")
    sk, ph = _as_u8_hwc(sketches), _as_u8_hwc(photos)
    if len(sk) != len(ph):
        raise ValueError(f"{len(sk)} sketches vs {len(ph)} photos: rows pair them one to one")
    cols = list(sketch_maps)
    n = 1 + len(cols)
    B = len(sk)
    fig, axes = plt.subplots(B, 2 * n, figsize=(size * 2 * n + 0.2, (size + 0.25) * B + 0.35), squeeze=False)
    for side, (ims, maps, name) in enumerate(((sk, sketch_maps, "sketch"), (ph, photo_maps, "photo"))):
        ovs = {c: overlay(ims, maps[c], normalise=normalise) for c in cols}
        for i in range(B):
            ax = axes[i, side * n]
            ax.imshow(ims[i], interpolation="nearest")
            title = _label(labels[i]) if labels is not None else ""
            ax.set_title(f"{name}\n{title}" if i == 0 else title, fontsize=7)
            for j, c in enumerate(cols, start=1):
                axes[i, side * n + j].imshow(ovs[c][i], interpolation="nearest")
                if i == 0:
                    axes[i, side * n + j].set_title(c, fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if suptitle:
        fig.suptitle(suptitle, fontsize=9.5)
    fig.tight_layout()
    return fig


def plot_layers_heads(maps: AttentionMaps, index: int = 0, token: Union[str, int] = "cls", image=None,
                      size: float = 1.1, normalise: str = "minmax", direction: str = "from"):
    """One image: rows = layers, columns = heads + their mean, for the map of ``token``."""
    import matplotlib.pyplot as plt

    img = image if image is not None else (maps.images[index:index + 1] if maps.images is not None else None)
    H, L = maps.num_heads, maps.num_layers
    fig, axes = plt.subplots(L, H + 1, figsize=(size * (H + 1), size * L + 0.4), squeeze=False)
    for l in range(L):
        for h in range(H + 1):
            m = maps.token_map(token, l, h if h < H else "mean", direction)[index:index + 1]
            ax = axes[l, h]
            if img is not None:
                ax.imshow(overlay(img, m, normalise=normalise)[0], interpolation="nearest")
            else:
                ax.imshow(m[0].numpy(), cmap="inferno")
            ax.set_xticks([])
            ax.set_yticks([])
            if l == 0:
                ax.set_title(f"head {h}" if h < H else "mean", fontsize=7.5)
            if h == 0:
                ax.set_ylabel(f"layer {l}", fontsize=7.5)
    fig.suptitle(f"attention {direction} {token} (image {index})", fontsize=9)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# numbers


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill the cells of a 2-D bool grid that the border cannot reach through ``False`` cells."""
    h, w = mask.shape
    outside = np.zeros_like(mask)
    stack = [(i, j) for i in range(h) for j in (0, w - 1)] + [(i, j) for i in (0, h - 1) for j in range(w)]
    while stack:
        i, j = stack.pop()
        if 0 <= i < h and 0 <= j < w and not mask[i, j] and not outside[i, j]:
            outside[i, j] = True
            stack += [(i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1)]
    return ~outside


def ink_mask(images, grid_size, threshold: int = 200, min_share: float = 0.02, fill: bool = False) -> torch.Tensor:
    """``[B, gh, gw]`` bool: patches of a sketch that hold ink (dark pixels).

    A patch counts as ink when more than ``min_share`` of its pixels have all channels below
    ``threshold`` (sketches are dark strokes on white). ``fill=True`` also marks the patches enclosed by
    ink (the inside of an outline): with a photo drawn from the same instance (the synthetic world's
    paired photo, same pose) this approximates the object's patches.
    """
    ims = _as_u8_hwc(images)
    dark = (ims < threshold).all(-1).astype(np.float32)  # [B, H, W]
    t = torch.from_numpy(dark)[:, None]
    share = F.adaptive_avg_pool2d(t, tuple(grid_size))[:, 0]
    mask = share > min_share
    if fill:
        mask = torch.from_numpy(np.stack([_fill_holes(m) for m in mask.numpy()]))
    return mask


def mass_on(maps, mask) -> torch.Tensor:
    """Fraction of each map's total mass on the ``mask`` patches: ``[B]``."""
    m = torch.as_tensor(maps, dtype=torch.float64).clamp_min(0)
    k = torch.as_tensor(mask, dtype=torch.float64)
    return ((m * k).sum((-2, -1)) / m.sum((-2, -1)).clamp_min(1e-12)).float()
