"""Prompted CLIP encoders built from an open_clip model's own modules (wrapped, never forked).

The encoders re-run open_clip's forward step by step with the model's own layers, so that learnable
tokens can be inserted; with no prompts they reproduce ``model.encode_image`` / ``model.encode_text``
exactly (pinned by ``tests/unit/test_prompts.py``). They own **no parameters** of their own: prompt
tensors are passed to ``forward`` by the method that owns them (a prompt learner), so with a frozen
backbone only those tensors receive gradients.

Prompt forms, and the papers they come from:

- **Shallow visual prompts** (VPT-shallow; Jia et al., *Visual Prompt Tuning*, ECCV 2022): ``K``
  tokens of width ``D`` appended to ``[CLS, patches]`` after the positional embedding and
  ``patch_dropout``, before ``ln_pre``; they get no positional embedding (CLIP-AT, Sain et al.,
  CVPR 2023, uses exactly this form).
- **Deep visual prompts** (VPT-deep, same paper): before block ``l`` the prompt positions are replaced
  by fresh layer-``l`` tokens; the previous block's outputs at those positions are discarded. Where no
  layer-``l`` tokens are given the prompts flow on through the block (MaPLe's "first J layers").
- **Conditional prompts** (CoCoOp-style, Zhou et al., CVPR 2022): any prompt tensor may carry a batch
  dimension, one prompt set per image / text.
- **Text context** (CoOp; Zhou et al., *Learning to Prompt for Vision-Language Models*, IJCV 2022):
  ``n_ctx`` learnable word embeddings replace the embeddings of ``n_ctx`` placeholder words right
  after the start token (prompts built by :func:`build_prompt_tokens`); they receive the positional
  embedding like the words they replace. The causal mask and the EOT (argmax) pooling stay valid.
- **Deep text prompts** (MaPLe; Khattak et al., *MaPLe: Multi-modal Prompt Learning*, CVPR 2023):
  the same ``n_ctx`` positions are replaced before each of the first ``J`` text blocks.
- **On-the-fly prompts**: deep prompts may be a callable ``(layer_idx, x) -> Tensor | None`` that
  computes layer-``l`` prompts during the forward (MaPLe coupling, SpLIP layer-wise tokens, DP-CLIP
  category prompts).

Token layout. Visual prompts are appended **after** the image tokens, ``[CLS, patch_1..patch_N,
prompt_1..prompt_K]``. Self-attention without positional information on the prompts is
permutation-equivariant, so the placement gives the same outputs as VPT's ``[CLS, prompts, patches]``
while keeping the CLS and patch positions (and open_clip's pooling) unchanged. Prompts are stripped
before open_clip's ``_pool``, so every pooling variant (``tok``, ``avg``, ``final_ln_after_pool``,
attentional pooling) works as in open_clip.

Layer indexing. ``deep_prompts[l]`` enters block ``l`` (0-based); ``deep_prompts[0]`` is therefore
inserted *after* ``ln_pre``. MaPLe's and CLIP-AT's first-layer prompts go through ``ln_pre``: pass them
as ``prompts`` and start the deep list at layer 1, e.g. ``deep_prompts=[None, *deeper]``. The same
holds for text: ``ctx`` is layer 0 (with positional embedding), ``deep_ctx[l]`` replaces the hidden
state before block ``l``.

Block edits. Methods that adapt CLIP *inside* its blocks (DP-CLIP's text-guided scaling: a LoRA branch
on the fused QKV projection and beside the MLP, or per-channel scales of Q/K/V and of the MLP hidden
units) pass ``block_edits``: per layer an optional :class:`BlockEdit`. A block with an edit is run by
:func:`run_edited_block`, which recomputes open_clip's ``ResidualAttentionBlock`` from the block's own
modules (``ln_1``, the fused ``in_proj``, ``out_proj``, ``ls_1``, ``ln_2``, the MLP, ``ls_2``) with the
edit applied; a block without one is called as usual, so unused edits cost nothing and leave every
output bit-identical. An edited block is not called as a module, so module hooks on it do not fire:
code that watches blocks (the attention recorder of :mod:`sbirlab.viz.attention`) registers with
:func:`observe_block_edits` to see the edited runs too.

Attention maps (``return_attn``) are recomputed from each block's own attention module on ``ln_1(x)``
with ``need_weights=True`` only when requested, so the plain path keeps open_clip's speed; for an edited
block they are recomputed with the edit (:func:`attention_weights` with ``edit``).
"""
from __future__ import annotations

import contextlib
import math
import weakref
from dataclasses import dataclass
from typing import Callable, Iterator, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

__all__ = [
    "PromptedVisionEncoder",
    "PromptedTextEncoder",
    "VisionOutput",
    "TextOutput",
    "build_prompt_tokens",
    "attention_weights",
    "BlockEdit",
    "check_editable",
    "run_edited_block",
    "observe_block_edits",
    "appended_outputs",
    "DEFAULT_PLACEHOLDER",
    "DEFAULT_PLACEHOLDER_ID",
]

DEFAULT_PLACEHOLDER = "X"
DEFAULT_PLACEHOLDER_ID = 343  # "X" -> "x</w>" in open_clip's SimpleTokenizer (one BPE token)

PromptFn = Callable[[int, torch.Tensor], Optional[torch.Tensor]]
DeepPrompts = Union[torch.Tensor, Sequence[Optional[torch.Tensor]], PromptFn, None]
LayerHook = Callable[[int, torch.Tensor], Optional[torch.Tensor]]
LayerSelect = Union[bool, int, Sequence[int]]


@dataclass(frozen=True)
class BlockEdit:
    """Changes to one open_clip ``ResidualAttentionBlock``'s computation (see "Block edits" above).

    The edited block computes, with ``h = ln_1(x)`` and ``u = ln_2(x')``::

        qkv = (in_proj(h) + qkv_delta(h)) * qkv_scale          # [B, T, 3D], channels q | k | v
        x'  = x + ls_1(out_proj(softmax(q kᵀ / sqrt(d_head)) v))
        out = x' + ls_2(c_proj(act(c_fc(u)) * mlp_hidden_scale) + mlp_delta(u))

    Every field is optional (``None`` = that part as in CLIP); an edit with all fields ``None`` is the
    plain block up to the attention kernel's summation order.

    Attributes:
        qkv_delta: ``h -> [B, T, 3D]`` added to the fused QKV projection (e.g. a LoRA ``B (s * A h)``).
        qkv_scale: multiplies the fused QKV projection (after ``qkv_delta``): broadcastable to
            ``[B, T, 3D]``, e.g. ``[B, 1, 3D]`` per-sample channel scales.
        mlp_hidden_scale: multiplies the MLP's hidden activations (the input of ``c_proj``):
            broadcastable to ``[B, T, H]``.
        mlp_delta: ``u -> [B, T, D]`` added to the MLP output (a parallel branch, e.g. LoRA on the MLP).
    """

    qkv_delta: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
    qkv_scale: Optional[torch.Tensor] = None
    mlp_hidden_scale: Optional[torch.Tensor] = None
    mlp_delta: Optional[Callable[[torch.Tensor], torch.Tensor]] = None

    @property
    def changes_attention(self) -> bool:
        """Whether the attention probabilities differ from the plain block's (a QKV change)."""
        return self.qkv_delta is not None or self.qkv_scale is not None


EditFn = Callable[[int, torch.Tensor], Optional[BlockEdit]]
BlockEdits = Union[Sequence[Optional[BlockEdit]], EditFn, None]
EditObserver = Callable[..., None]


# --------------------------------------------------------------------------------------------------
# outputs


@dataclass
class VisionOutput:
    """Everything the prompted image encoder can return.

    Attributes:
        embeds: projected embedding ``[B, E]`` (what ``encode_image`` returns; not normalised).
        pooled: pooled features before the projection ``[B, D]``.
        patch_tokens: open_clip's pooled-side tokens (``ln_post`` applied, CLS removed) ``[B, N, D]``.
        prompt_tokens: last-block outputs at the prompt positions ``[B, K, D]`` (``None`` without prompts).
        hidden_states: ``L + 1`` entries: entry ``l < L`` is the sequence entering block ``l`` (after
            prompt insertion, ``[B, 1 + N + K_l, D]``), entry ``L`` the output of the last block; only
            requested entries are filled, the others are ``None``. ``None`` if nothing was requested.
        attentions: ``L`` entries ``[B, heads, T_l, T_l]`` (softmax rows, prompts included), ``None``
            where not requested; ``None`` if nothing was requested.
        grid_size: patch grid ``(gh, gw)``.
        num_image_tokens: ``1 + N`` (CLS + patches kept by ``patch_dropout``).
    """

    embeds: torch.Tensor
    pooled: torch.Tensor
    patch_tokens: torch.Tensor
    prompt_tokens: Optional[torch.Tensor]
    hidden_states: Optional[List[Optional[torch.Tensor]]]
    attentions: Optional[List[Optional[torch.Tensor]]]
    grid_size: tuple
    num_image_tokens: int

    def patch_grid(self, index: int = -2) -> torch.Tensor:
        """Patch tokens of ``hidden_states[index]`` as a grid ``[B, gh, gw, D]``.

        The default ``-2`` is the sequence entering the last block (DP-CLIP's patch-level matching).
        """
        if self.hidden_states is None or self.hidden_states[index] is None:
            raise ValueError(f"hidden state {index} was not requested (pass return_tokens={index})")
        gh, gw = self.grid_size
        if self.num_image_tokens != 1 + gh * gw:
            raise ValueError("patch_dropout removed patches: the tokens no longer form a grid")
        h = self.hidden_states[index]
        return h[:, 1:self.num_image_tokens].reshape(h.shape[0], gh, gw, h.shape[-1])  # [B, gh, gw, D]


@dataclass
class TextOutput:
    """Everything the prompted text encoder can return.

    Attributes:
        embeds: projected EOT embedding ``[B, E]`` (what ``encode_text`` returns; not normalised).
        tokens: ``ln_final`` output for every position ``[B, T, W]``.
        hidden_states: ``L + 1`` entries as in :class:`VisionOutput` (``[B, T, W]``), or ``None``.
        attentions: ``L`` entries ``[B, heads, T, T]`` (causal), or ``None``.
    """

    embeds: torch.Tensor
    tokens: torch.Tensor
    hidden_states: Optional[List[Optional[torch.Tensor]]]
    attentions: Optional[List[Optional[torch.Tensor]]]


# --------------------------------------------------------------------------------------------------
# shared helpers


def _select_layers(select: LayerSelect, n: int) -> List[bool]:
    """Which of ``n`` indices are requested: ``True`` = all, an int or a list of ints (negatives ok)."""
    if select is False or select is None:
        return [False] * n
    if select is True:
        return [True] * n
    idx = [select] if isinstance(select, int) else list(select)
    keep = [False] * n
    for i in idx:
        if not -n <= i < n:
            raise IndexError(f"layer index {i} out of range for {n} entries")
        keep[i % n] = True
    return keep


def _as_batch(p: torch.Tensor, batch: int, width: int, dtype: torch.dtype, what: str) -> torch.Tensor:
    """``[K, D]`` / ``[1, K, D]`` / ``[B, K, D]`` -> ``[B, K, D]`` in ``dtype``."""
    if p.dim() == 2:
        p = p.unsqueeze(0)
    if p.dim() != 3 or p.shape[-1] != width or p.shape[0] not in (1, batch):
        raise ValueError(f"{what} must have shape [K, {width}], [1, K, {width}] or [{batch}, K, {width}]; "
                         f"got {tuple(p.shape)}")
    return p.to(dtype).expand(batch, -1, -1)


def _deep_getter(deep: DeepPrompts, num_layers: int) -> Callable[[int, torch.Tensor], Optional[torch.Tensor]]:
    """Normalise the accepted deep-prompt forms into ``get(layer_idx, x) -> Tensor | None``."""
    if deep is None:
        return lambda l, x: None
    if callable(deep) and not isinstance(deep, torch.Tensor):
        return deep
    if isinstance(deep, torch.Tensor):
        if deep.dim() == 3:  # [J, K, D], shared by the batch
            n = deep.shape[0]
            get = lambda l, x: deep[l] if l < n else None  # noqa: E731
        elif deep.dim() == 4:  # [B, J, K, D], per sample
            n = deep.shape[1]
            get = lambda l, x: deep[:, l] if l < n else None  # noqa: E731
        else:
            raise ValueError(f"deep prompts tensor must be [J, K, D] or [B, J, K, D]; got {tuple(deep.shape)}")
    elif isinstance(deep, (list, tuple)):
        n = len(deep)
        get = lambda l, x: deep[l] if l < n else None  # noqa: E731
    else:
        raise TypeError(f"deep prompts must be a tensor, a list per layer or a callable; got {type(deep)}")
    if n > num_layers:
        raise ValueError(f"deep prompts for {n} layers given, the transformer has {num_layers}")
    return get


def attention_weights(block: nn.Module, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None,
                      edit: Optional[BlockEdit] = None) -> torch.Tensor:
    """Attention probabilities of one open_clip residual block for its input ``x``.

    Works for ``ResidualAttentionBlock`` (``nn.MultiheadAttention``, called with ``need_weights=True``)
    and ``CustomResidualAttentionBlock`` (open_clip's ``Attention``: ``softmax(q kᵀ)`` recomputed from
    its own projection, q/k norms and scaled-cosine logits).

    Args:
        block: a residual block of an open_clip transformer.
        x: the block's input ``[B, T, D]``.
        attn_mask: additive mask ``[T, T]`` (the text tower's causal mask) or ``None``.
        edit: the :class:`BlockEdit` the block runs with (``None``: the plain block); with a QKV change
            the probabilities are ``softmax(q kᵀ / sqrt(d_head))`` of the edited projection.

    Returns:
        ``[B, heads, T, T]``, rows summing to 1.
    """
    from open_clip.transformer import Attention

    h = block.ln_1(x)  # [B, T, D]
    attn = block.attn
    if edit is not None and edit.changes_attention:
        check_editable(block)
        q, k, _ = _edited_qkv(attn, h, edit)  # [B, H, T, hd] each
        logits = (q * (1.0 / math.sqrt(q.shape[-1]))) @ k.transpose(-1, -2)  # [B, H, T, T]
        mask = _sdpa_mask(attn_mask, h.shape[0], attn.num_heads, h.shape[1], logits.dtype)
        if mask is not None:
            logits = logits + mask
        return logits.softmax(dim=-1)
    if isinstance(attn, nn.MultiheadAttention):
        mask = attn_mask.to(h.dtype) if attn_mask is not None else None
        _, weights = attn(h, h, h, need_weights=True, average_attn_weights=False, attn_mask=mask)
        return weights  # [B, heads, T, T]
    if isinstance(attn, Attention):
        B, T, C = h.shape
        q, k, _ = F.linear(h, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
        q = q.reshape(B, T, attn.num_heads, -1).transpose(1, 2)  # [B, H, T, hd]
        k = k.reshape(B, T, attn.num_heads, -1).transpose(1, 2)
        if attn.logit_scale is not None:
            logits = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-1, -2)
            logits = logits * torch.clamp(attn.logit_scale, max=attn.logit_scale_max).exp()
        else:
            q, k = attn.ln_q(q), attn.ln_k(k)
            logits = (q * attn.scale) @ k.transpose(-1, -2)  # [B, H, T, T]
        if attn_mask is not None:
            mask = attn_mask.to(logits.dtype)
            if mask.dim() == 3:  # [B*H, T, T] padding masks
                mask = mask.reshape(B, attn.num_heads, T, T)
            logits = logits + mask
        return logits.softmax(dim=-1)
    raise NotImplementedError(f"attention maps for {type(attn).__name__} blocks are not supported")


def _run_block(block: nn.Module, x: torch.Tensor, attn_mask: Optional[torch.Tensor], use_ckpt: bool) -> torch.Tensor:
    if use_ckpt:
        # kwargs through non-reentrant checkpointing work for both open_clip block types
        # (open_clip's own positional call breaks for CustomResidualAttentionBlock)
        return checkpoint(block, x, attn_mask=attn_mask, use_reentrant=False)
    return block(x, attn_mask=attn_mask)


# --------------------------------------------------------------------------------------------------
# block edits


def check_editable(block: nn.Module) -> None:
    """Raise ``NotImplementedError`` unless ``block`` can run with a :class:`BlockEdit`.

    Editable: open_clip's ``ResidualAttentionBlock`` with its ``nn.MultiheadAttention`` (fused
    ``in_proj``, no dropout), self-attention only. ``CustomResidualAttentionBlock`` (scaled-cosine /
    q-k-norm attention) and cross-attention blocks are not.
    """
    from open_clip.transformer import ResidualAttentionBlock

    attn = getattr(block, "attn", None)
    if not isinstance(block, ResidualAttentionBlock) or not isinstance(attn, nn.MultiheadAttention) \
            or hasattr(block, "ln_1_kv") or attn.in_proj_weight is None or attn.dropout:
        raise NotImplementedError(
            f"block edits re-run open_clip's ResidualAttentionBlock (nn.MultiheadAttention with a fused "
            f"in_proj, self-attention, no dropout); got {type(block).__name__}")


def _edited_qkv(attn: nn.MultiheadAttention, h: torch.Tensor, edit: BlockEdit):
    """``q, k, v`` ``[B, H, T, hd]`` of the fused projection of ``h`` with the edit's QKV change."""
    B, T, D = h.shape
    qkv = F.linear(h, attn.in_proj_weight, attn.in_proj_bias)  # [B, T, 3D]
    if edit.qkv_delta is not None:
        qkv = qkv + edit.qkv_delta(h)
    if edit.qkv_scale is not None:
        qkv = qkv * edit.qkv_scale
    heads = attn.num_heads
    return qkv.view(B, T, 3, heads, D // heads).permute(2, 0, 3, 1, 4)  # 3 x [B, H, T, hd]


def _sdpa_mask(attn_mask: Optional[torch.Tensor], batch: int, heads: int, seq: int,
               dtype: torch.dtype) -> Optional[torch.Tensor]:
    """open_clip's additive masks (``[T, T]`` causal, ``[B*H, T, T]`` padding) for ``[B, H, T, T]`` logits."""
    if attn_mask is None:
        return None
    mask = attn_mask.to(dtype)
    if mask.dim() == 3:
        mask = mask.reshape(batch, heads, seq, seq)
    return mask


def _edited_attention(block: nn.Module, h: torch.Tensor, edit: BlockEdit,
                      attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``block.attn(h, h, h)`` recomputed from its own weights with the edit's QKV change: ``[B, T, D]``."""
    attn = block.attn
    B, T, D = h.shape
    q, k, v = _edited_qkv(attn, h, edit)
    mask = _sdpa_mask(attn_mask, B, attn.num_heads, T, q.dtype)
    o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # [B, H, T, hd]
    return attn.out_proj(o.transpose(1, 2).reshape(B, T, D))


def _edited_mlp(block: nn.Module, h: torch.Tensor, edit: BlockEdit) -> torch.Tensor:
    """``block.mlp(h)`` with the hidden activations (input of ``c_proj``) scaled and the parallel branch added."""
    if edit.mlp_hidden_scale is None:
        z = block.mlp(h)
    else:
        z = h
        for name, mod in block.mlp.named_children():
            if name == "c_proj":
                z = z * edit.mlp_hidden_scale
            z = mod(z)
    if edit.mlp_delta is not None:
        z = z + edit.mlp_delta(h)
    return z


def run_edited_block(block: nn.Module, x: torch.Tensor, edit: BlockEdit,
                     attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """One residual block on ``x`` ``[B, T, D]`` with ``edit`` applied (formula in :class:`BlockEdit`).

    Recomputes open_clip's ``ResidualAttentionBlock.forward`` from the block's own modules
    (``x + ls_1(attn(ln_1(x)))``, then ``+ ls_2(mlp(ln_2(.)))``); the attention runs as
    ``F.scaled_dot_product_attention`` on the fused projection. ``attn_mask``: the additive mask the
    block would get (text tower), or ``None``.

    Raises:
        NotImplementedError: the block is not editable (:func:`check_editable`).
    """
    check_editable(block)
    h = block.ln_1(x)
    x = x + block.ls_1(_edited_attention(block, h, edit, attn_mask))
    h = block.ln_2(x)
    return x + block.ls_2(_edited_mlp(block, h, edit))


def _edit_getter(edits: BlockEdits, num_layers: int) -> Optional[EditFn]:
    """Normalise ``block_edits`` into ``get(layer_idx, x) -> BlockEdit | None``, or ``None`` without edits."""
    if edits is None:
        return None
    if callable(edits):
        return edits
    if isinstance(edits, (list, tuple)):
        if len(edits) > num_layers:
            raise ValueError(f"block edits for {len(edits)} layers given, the transformer has {num_layers}")
        if any(e is not None and not isinstance(e, BlockEdit) for e in edits):
            raise TypeError("block edits must be BlockEdit or None per layer")
        n = len(edits)
        return lambda l, x: edits[l] if l < n else None  # noqa: E731
    raise TypeError(f"block edits must be a list per layer or a callable; got {type(edits)}")


#: transformer -> observers of its edited block runs (see :func:`observe_block_edits`)
_EDIT_OBSERVERS: "weakref.WeakKeyDictionary[nn.Module, List[EditObserver]]" = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def observe_block_edits(transformer: nn.Module, observer: EditObserver) -> Iterator[None]:
    """Context manager: call ``observer`` after every edited block run of ``transformer``.

    Edited blocks (:class:`BlockEdit`) are not called as modules, so forward hooks on them do not
    fire; an observer sees those runs instead, as
    ``observer(layer, block, x_in, x_out, edit, attn_mask)`` with the block's input and output
    ``[B, T, D]``. Plain (unedited) blocks are not reported: module hooks see them.

    Args:
        transformer: the ``.transformer`` of an open_clip tower (``visual.transformer`` for images).
        observer: the callable; it must not change its arguments.
    """
    obs = _EDIT_OBSERVERS.setdefault(transformer, [])
    obs.append(observer)
    try:
        yield
    finally:
        obs.remove(observer)
        if not obs:
            _EDIT_OBSERVERS.pop(transformer, None)


def _run_edited(transformer: nn.Module, layer: int, block: nn.Module, x: torch.Tensor, edit: BlockEdit,
                attn_mask: Optional[torch.Tensor], use_ckpt: bool) -> torch.Tensor:
    if use_ckpt:
        out = checkpoint(run_edited_block, block, x, edit, attn_mask, use_reentrant=False)
    else:
        out = run_edited_block(block, x, edit, attn_mask)
    for observer in tuple(_EDIT_OBSERVERS.get(transformer, ())):
        observer(layer, block, x, out, edit, attn_mask)
    return out


def _layer_plan(transformer: nn.Module, return_tokens: LayerSelect, return_attn: LayerSelect,
                deep: DeepPrompts, block_edits: BlockEdits):
    """What a prompted forward does at each layer of ``transformer``: ``(keep_hidden, keep_attn,
    get_deep, get_edit, use_ckpt)`` (hidden states / attention kept per layer, the deep-prompt and
    block-edit getters, whether blocks run gradient-checkpointed)."""
    n_layers = len(transformer.resblocks)
    use_ckpt = bool(getattr(transformer, "grad_checkpointing", False)) and torch.is_grad_enabled()
    return (_select_layers(return_tokens, n_layers + 1), _select_layers(return_attn, n_layers),
            _deep_getter(deep, n_layers), _edit_getter(block_edits, n_layers), use_ckpt)


def _layer_step(transformer: nn.Module, layer: int, block: nn.Module, x: torch.Tensor,
                attn_mask: Optional[torch.Tensor], get_edit: Optional[EditFn], use_ckpt: bool,
                layer_hook: Optional[LayerHook], hidden: Optional[list], attns: Optional[list]) -> torch.Tensor:
    """Block ``layer`` of a prompted forward (vision or text) on ``x``, the sequence after prompt insertion.

    Runs the block plainly, or with its :class:`BlockEdit` (``get_edit``); stores its input in
    ``hidden[layer]`` and its attention in ``attns[layer]`` when those lists are given; applies
    ``layer_hook`` to its output. Returns the block's (possibly hook-replaced) output.
    """
    edit = get_edit(layer, x) if get_edit is not None else None
    if hidden is not None:
        hidden[layer] = x
    if attns is not None:
        attns[layer] = attention_weights(block, x, attn_mask, edit)
    if edit is None:
        x = _run_block(block, x, attn_mask, use_ckpt)
    else:
        x = _run_edited(transformer, layer, block, x, edit, attn_mask, use_ckpt)
    if layer_hook is not None:
        replaced = layer_hook(layer, x)
        if replaced is not None:
            x = replaced
    return x


def appended_outputs(block: nn.Module, context: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """``block(cat([context, t_l]))[..., -K:, :]`` for every token set ``t_l``, computing only those outputs.

    Equal to running the (non-causal, unmasked) block on ``[context ; tokens of set l]`` for each set
    and keeping the appended positions, but the context's keys and values are projected once for all
    sets and only the ``K`` appended positions are queried and sent through the MLP: DP-CLIP's prompt
    generator reads ``3 (N + 1)`` support tokens for ``L`` layers of ``K = 3`` prompts, ~``(3N + 3) / K``
    times less work than the literal form.

    Args:
        block: an editable open_clip ``ResidualAttentionBlock`` (:func:`check_editable`).
        context: ``[U, T, D]`` tokens shared by all sets.
        tokens: ``[U, L, K, D]``: ``L`` sets of ``K`` tokens appended to ``context[u]``.

    Returns:
        ``[U, L, K, D]``.
    """
    check_editable(block)
    attn = block.attn
    U, L, K, D = tokens.shape
    H = attn.num_heads
    w_q, w_kv = attn.in_proj_weight[:D], attn.in_proj_weight[D:]
    b_q, b_kv = (attn.in_proj_bias[:D], attn.in_proj_bias[D:]) if attn.in_proj_bias is not None else (None, None)
    k_c, v_c = F.linear(block.ln_1(context), w_kv, b_kv).chunk(2, dim=-1)  # [U, T, D] each, once for all sets
    h = block.ln_1(tokens)  # [U, L, K, D]
    q = F.linear(h, w_q, b_q)
    k_p, v_p = F.linear(h, w_kv, b_kv).chunk(2, dim=-1)
    k = torch.cat([k_c.unsqueeze(1).expand(U, L, -1, D), k_p], dim=2)  # [U, L, T+K, D]
    v = torch.cat([v_c.unsqueeze(1).expand(U, L, -1, D), v_p], dim=2)

    def heads(t):  # [U, L, S, D] -> [U*L, H, S, D/H]
        return t.reshape(U * L, t.shape[2], H, D // H).transpose(1, 2)

    o = F.scaled_dot_product_attention(heads(q), heads(k), heads(v))  # [U*L, H, K, D/H]
    x = tokens + block.ls_1(attn.out_proj(o.transpose(1, 2).reshape(U, L, K, D)))
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def _check_transformer(transformer: nn.Module, what: str) -> None:
    if not getattr(transformer, "batch_first", True):
        raise NotImplementedError(f"{what}: sequence-first transformers are not supported (open_clip 3.x is "
                                  f"batch-first)")
    if not hasattr(transformer, "resblocks"):
        raise NotImplementedError(f"{what}: transformer without `resblocks` is not supported")


# --------------------------------------------------------------------------------------------------
# vision


class PromptedVisionEncoder(nn.Module):
    """Image encoder of an open_clip ``VisionTransformer`` with shallow / deep / conditional prompts.

    Args:
        visual: ``clip_model.visual`` (an open_clip ``VisionTransformer``).

    Raises:
        NotImplementedError: for other image towers (``ModifiedResNet``, timm towers).

    Example:
        >>> enc = PromptedVisionEncoder(model.visual)
        >>> prompts = nn.Parameter(torch.zeros(3, enc.width))           # CLIP-AT, K = 3
        >>> feats = enc(images, prompts=prompts)                         # [B, E]
        >>> deep = nn.Parameter(torch.zeros(enc.num_layers, 3, enc.width))
        >>> out = enc(images, deep_prompts=deep, return_tokens=-2, return_attn=True)
        >>> out.patch_grid(-2).shape                                     # [B, gh, gw, D]
    """

    def __init__(self, visual: nn.Module):
        super().__init__()
        from open_clip.transformer import VisionTransformer

        if not isinstance(visual, VisionTransformer):
            raise NotImplementedError(
                f"PromptedVisionEncoder needs an open_clip VisionTransformer image tower; got "
                f"{type(visual).__name__} (ResNet and timm towers have no token sequence to prompt)")
        _check_transformer(visual.transformer, "PromptedVisionEncoder")
        self.visual = visual

    @property
    def width(self) -> int:
        """Token width ``D`` of the vision transformer."""
        return int(self.visual.transformer.width)

    @property
    def num_layers(self) -> int:
        """Number of residual blocks ``L``."""
        return len(self.visual.transformer.resblocks)

    @property
    def num_heads(self) -> int:
        """Attention heads per block."""
        attn = self.visual.transformer.resblocks[0].attn
        return int(attn.num_heads)

    @property
    def output_dim(self) -> int:
        """Embedding size ``E`` after the projection."""
        proj = self.visual.proj
        return int(proj.shape[1]) if proj is not None else self.width

    @property
    def grid_size(self) -> tuple:
        """Patch grid ``(gh, gw)`` at the model's input size."""
        return tuple(self.visual.grid_size)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Patch embedding + CLS + positional embedding + ``patch_dropout`` (no ``ln_pre``): ``[B, 1+N, D]``."""
        v = self.visual
        x = v.conv1(images)  # [B, D, gh, gw]
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)  # [B, N, D]
        cls = v.class_embedding.view(1, 1, -1).expand(x.shape[0], -1, -1).to(x.dtype)
        x = torch.cat([cls, x], dim=1)  # [B, 1+N, D]
        x = x + v.positional_embedding.to(x.dtype)
        return v.patch_dropout(x)

    def forward(self, images: torch.Tensor, prompts: Optional[torch.Tensor] = None, deep_prompts: DeepPrompts = None,
                return_tokens: LayerSelect = False, return_attn: LayerSelect = False,
                layer_hook: Optional[LayerHook] = None,
                block_edits: BlockEdits = None) -> Union[torch.Tensor, VisionOutput]:
        """Encode images, optionally with prompts.

        Args:
            images: normalised images ``[B, 3, H, W]``.
            prompts: shallow prompts ``[K, D]``, ``[1, K, D]`` or per-sample ``[B, K, D]``, inserted before
                ``ln_pre``.
            deep_prompts: layer prompts replacing the prompt positions before block ``l``: a tensor
                ``[J, K, D]`` (layers ``0..J-1``) or ``[B, J, K, D]``; a list with one entry per layer
                (``None`` = keep the current prompts), entries ``[K, D]`` / ``[1|B, K, D]``; or a callable
                ``(layer_idx, image_tokens) -> Tensor | None`` where ``image_tokens`` ``[B, 1+N, D]`` is
                the CLS + patch part of the sequence entering the block. ``K`` may differ per layer.
            return_tokens: hidden states to return (``True`` = all ``L + 1``, or indices, e.g. ``-2`` for
                the sequence entering the last block).
            return_attn: attention maps to return (``True`` = all layers, or layer indices).
            layer_hook: ``(layer_idx, x) -> Tensor | None`` called after each block with its output
                ``[B, T, D]`` (image tokens first, then prompts); a returned tensor replaces ``x``.
            block_edits: per-layer :class:`BlockEdit` (LoRA / channel scaling inside the block): a list
                with one entry per layer (``None`` = the plain block), or a callable
                ``(layer_idx, x) -> BlockEdit | None`` with ``x`` the full sequence entering the block
                (after prompt insertion). Edited blocks run through :func:`run_edited_block`.

        Returns:
            The embedding ``[B, E]``, or a :class:`VisionOutput` when tokens or attention are requested.
        """
        if return_tokens is False and return_attn is False:
            return self.forward_features(images, prompts, deep_prompts, layer_hook=layer_hook,
                                         block_edits=block_edits).embeds
        return self.forward_features(images, prompts, deep_prompts, return_tokens, return_attn, layer_hook,
                                     block_edits)

    def forward_features(self, images: torch.Tensor, prompts: Optional[torch.Tensor] = None,
                         deep_prompts: DeepPrompts = None, return_tokens: LayerSelect = False,
                         return_attn: LayerSelect = False, layer_hook: Optional[LayerHook] = None,
                         block_edits: BlockEdits = None) -> VisionOutput:
        """Like :meth:`forward` but always returns a :class:`VisionOutput`."""
        v = self.visual
        blocks = v.transformer.resblocks
        n_layers, width = len(blocks), self.width
        keep_hidden, keep_attn, get_deep, get_edit, use_ckpt = _layer_plan(
            v.transformer, return_tokens, return_attn, deep_prompts, block_edits)

        x = self.embed(images)  # [B, 1+N, D]
        batch, n_img = x.shape[0], x.shape[1]
        grid = (images.shape[-2] // v.patch_size[0], images.shape[-1] // v.patch_size[1])
        if prompts is not None:
            x = torch.cat([x, _as_batch(prompts, batch, width, x.dtype, "prompts")], dim=1)  # [B, 1+N+K, D]
        x = v.ln_pre(x)

        hidden: List[Optional[torch.Tensor]] = [None] * (n_layers + 1)
        attns: List[Optional[torch.Tensor]] = [None] * n_layers
        for layer, block in enumerate(blocks):
            p = get_deep(layer, x[:, :n_img])
            if p is not None:
                p = _as_batch(p, batch, width, x.dtype, f"deep prompts of layer {layer}")
                x = torch.cat([x[:, :n_img], p], dim=1)  # replace the prompt positions [B, 1+N+K_l, D]
            x = _layer_step(v.transformer, layer, block, x, None, get_edit, use_ckpt, layer_hook,
                            hidden if keep_hidden[layer] else None, attns if keep_attn[layer] else None)
        if keep_hidden[n_layers]:
            hidden[n_layers] = x

        prompt_out = x[:, n_img:] if x.shape[1] > n_img else None  # [B, K, D]
        pooled, tokens = v._pool(x[:, :n_img])  # prompts stripped: open_clip's pooling as usual
        embeds = pooled @ v.proj if v.proj is not None else pooled
        return VisionOutput(
            embeds=embeds, pooled=pooled, patch_tokens=tokens, prompt_tokens=prompt_out,
            hidden_states=hidden if any(keep_hidden) else None,
            attentions=attns if any(keep_attn) else None,
            grid_size=grid, num_image_tokens=n_img,
        )


# --------------------------------------------------------------------------------------------------
# text


class PromptedTextEncoder(nn.Module):
    """Text encoder of an open_clip CLIP with CoOp context and MaPLe-style deep text prompts.

    Args:
        clip_model: an open_clip ``CLIP`` (text parts live on the model), a ``CustomTextCLIP`` whose
            ``.text`` is a ``TextTransformer``, or a ``TextTransformer`` itself.
        placeholder_id: token id of the placeholder word the context replaces (``"X"`` = 343 in
            open_clip's tokenizer); prompted calls check the replaced positions hold it, so class words
            or the EOT token are never overwritten. ``None`` disables the check.

    Raises:
        NotImplementedError: Hugging Face text towers and CoCa-style appended class tokens.

    Example:
        >>> enc = PromptedTextEncoder(model)
        >>> tokens = build_prompt_tokens(tokenizer, ["cat", "dog"], n_ctx=4)   # "X X X X a photo of a cat."
        >>> ctx = nn.Parameter(0.02 * torch.randn(4, enc.width))
        >>> text_feats = enc(tokens, ctx=ctx)                                 # [2, E]
    """

    def __init__(self, clip_model: nn.Module, placeholder_id: Optional[int] = DEFAULT_PLACEHOLDER_ID):
        super().__init__()
        from open_clip.transformer import TextTransformer

        if isinstance(clip_model, TextTransformer):
            tower = clip_model
        elif isinstance(getattr(clip_model, "text", None), TextTransformer):
            tower = clip_model.text
        elif all(hasattr(clip_model, a) for a in ("token_embedding", "transformer", "ln_final",
                                                  "positional_embedding")):
            tower = None
        else:
            kind = type(getattr(clip_model, "text", clip_model)).__name__
            raise NotImplementedError(f"PromptedTextEncoder needs open_clip's own text transformer; got {kind} "
                                      f"(Hugging Face text towers are not supported)")
        src = tower if tower is not None else clip_model
        if tower is not None and getattr(tower, "cls_emb", None) is not None:
            raise NotImplementedError("text towers with an appended class token (CoCa) are not supported")
        _check_transformer(src.transformer, "PromptedTextEncoder")
        self.token_embedding = src.token_embedding
        self.positional_embedding = src.positional_embedding
        self.transformer = src.transformer
        self.ln_final = src.ln_final
        self.text_projection = src.text_projection
        self.pool_type = tower.pool_type if tower is not None else getattr(clip_model, "text_pool_type", "argmax")
        self.eos_id = tower.eos_id if tower is not None else getattr(clip_model, "text_eos_id", None)
        self.placeholder_id = placeholder_id
        # the causal mask is a buffer of the owner; read it at call time so .to(device) on the owner is seen
        self.__dict__["_mask_owner"] = src
        self.__dict__["_tower"] = tower

    @property
    def width(self) -> int:
        """Token width ``W`` of the text transformer."""
        return int(self.transformer.width)

    @property
    def num_layers(self) -> int:
        """Number of residual blocks."""
        return len(self.transformer.resblocks)

    @property
    def context_length(self) -> int:
        """Maximum number of tokens."""
        return int(self.positional_embedding.shape[0])

    def _attn_mask(self, text: torch.Tensor, seq_len: int, dtype: torch.dtype) -> Optional[torch.Tensor]:
        mask = getattr(self._mask_owner, "attn_mask", None)
        if mask is not None:
            mask = mask[:seq_len, :seq_len]
        tower = self._tower
        if tower is not None and getattr(tower, "use_pad_mask", False):
            pad = tower._build_additive_mask(text, seq_len, dtype)  # [B*heads, T, T]
            mask = pad if mask is None else mask.unsqueeze(0) + pad
        return mask

    def _check_positions(self, text: torch.Tensor, n: int, what: str) -> None:
        if n + 2 > text.shape[1]:
            raise ValueError(f"{what}: {n} context tokens do not fit in {text.shape[1]} positions")
        if self.placeholder_id is not None and not bool((text[:, 1:1 + n] == self.placeholder_id).all()):
            raise ValueError(
                f"{what}: token positions 1..{n} must hold the placeholder id {self.placeholder_id}; build the "
                f"prompts with build_prompt_tokens(tokenizer, classnames, n_ctx={n}) or pass placeholder_id=None")

    def forward(self, token_ids: torch.Tensor, ctx: Optional[torch.Tensor] = None, deep_ctx: DeepPrompts = None,
                return_tokens: LayerSelect = False, return_attn: LayerSelect = False,
                layer_hook: Optional[LayerHook] = None,
                block_edits: BlockEdits = None) -> Union[torch.Tensor, TextOutput]:
        """Encode token ids, optionally with learnable context.

        Args:
            token_ids: ``[B, T]`` from the model's tokenizer; with ``ctx`` / ``deep_ctx``, built by
                :func:`build_prompt_tokens` so positions ``1..n_ctx`` hold placeholders.
            ctx: CoOp context ``[n_ctx, W]`` (shared) or ``[B, n_ctx, W]`` (per text), replacing the
                placeholder embeddings before the positional embedding is added.
            deep_ctx: layer-wise context replacing hidden positions ``1..n`` before block ``l``: a tensor
                ``[J, n, W]`` or ``[B, J, n, W]``, a list per layer (``None`` = leave as is), or a callable
                ``(layer_idx, x) -> Tensor | None`` with ``x`` the full sequence ``[B, T, W]`` entering the
                block. MaPLe: ``ctx=P0, deep_ctx=[None, P1, ..., P_{J-1}]``.
            return_tokens: hidden states to return (``True`` = all ``L + 1``, or indices).
            return_attn: attention maps to return (``True`` = all layers, or layer indices).
            layer_hook: ``(layer_idx, x) -> Tensor | None`` called after each block; a returned tensor
                replaces ``x``.
            block_edits: per-layer :class:`BlockEdit`, as for :meth:`PromptedVisionEncoder.forward`
                (edited blocks get the causal / padding mask).

        Returns:
            The EOT embedding ``[B, E]`` (``text_projection`` of ``ln_final``), or a :class:`TextOutput`
            when tokens or attention are requested.
        """
        out = self.forward_features(token_ids, ctx, deep_ctx, return_tokens, return_attn, layer_hook, block_edits)
        if return_tokens is False and return_attn is False:
            return out.embeds
        return out

    def forward_features(self, token_ids: torch.Tensor, ctx: Optional[torch.Tensor] = None,
                         deep_ctx: DeepPrompts = None, return_tokens: LayerSelect = False,
                         return_attn: LayerSelect = False, layer_hook: Optional[LayerHook] = None,
                         block_edits: BlockEdits = None) -> TextOutput:
        """Like :meth:`forward` but always returns a :class:`TextOutput`."""
        from open_clip.transformer import text_global_pool

        blocks = self.transformer.resblocks
        n_layers, width = len(blocks), self.width
        keep_hidden, keep_attn, get_deep, get_edit, use_ckpt = _layer_plan(
            self.transformer, return_tokens, return_attn, deep_ctx, block_edits)
        cast_dtype = self.transformer.get_cast_dtype()
        batch, seq_len = token_ids.shape

        x = self.token_embedding(token_ids).to(cast_dtype)  # [B, T, W]
        if ctx is not None:
            c = _as_batch(ctx, batch, width, x.dtype, "ctx")  # [B, n_ctx, W]
            self._check_positions(token_ids, c.shape[1], "ctx")
            x = torch.cat([x[:, :1], c, x[:, 1 + c.shape[1]:]], dim=1)  # SOT, context, words, EOT, pad
        x = x + self.positional_embedding[:seq_len].to(cast_dtype)
        attn_mask = self._attn_mask(token_ids, seq_len, x.dtype)

        hidden: List[Optional[torch.Tensor]] = [None] * (n_layers + 1)
        attns: List[Optional[torch.Tensor]] = [None] * n_layers
        checked = set()
        for layer, block in enumerate(blocks):
            p = get_deep(layer, x)
            if p is not None:
                p = _as_batch(p, batch, width, x.dtype, f"deep ctx of layer {layer}")  # [B, n, W]
                n = p.shape[1]
                if n not in checked:
                    self._check_positions(token_ids, n, f"deep ctx of layer {layer}")
                    checked.add(n)
                x = torch.cat([x[:, :1], p, x[:, 1 + n:]], dim=1)
            x = _layer_step(self.transformer, layer, block, x, attn_mask, get_edit, use_ckpt, layer_hook,
                            hidden if keep_hidden[layer] else None, attns if keep_attn[layer] else None)
        if keep_hidden[n_layers]:
            hidden[n_layers] = x

        x = self.ln_final(x)  # [B, T, W]
        pooled = text_global_pool(x, token_ids, self.pool_type, eos_token_id=self.eos_id)  # [B, W]
        proj = self.text_projection
        if proj is not None:
            pooled = proj(pooled) if isinstance(proj, nn.Linear) else pooled @ proj
        return TextOutput(
            embeds=pooled, tokens=x,
            hidden_states=hidden if any(keep_hidden) else None,
            attentions=attns if any(keep_attn) else None,
        )


# --------------------------------------------------------------------------------------------------
# prompt construction


def build_prompt_tokens(
    tokenizer: Callable,
    classnames: Sequence[str],
    n_ctx: int,
    template: str = "a photo of a {}.",
    placeholder: str = DEFAULT_PLACEHOLDER,
) -> torch.Tensor:
    """Token ids of CoOp-style prompts ``"X X X X a photo of a {class}."``.

    Underscores in class names become spaces (``"hot_air_balloon"`` -> ``"hot air balloon"``), as in
    CoOp. The ``n_ctx`` placeholders sit at positions ``1..n_ctx`` right after the start token, where
    :class:`PromptedTextEncoder` substitutes the learnable context.

    Args:
        tokenizer: the backbone's open_clip tokenizer.
        classnames: class names.
        n_ctx: number of context tokens (0 = the plain template).
        template: a format string with one ``{}`` for the class name.
        placeholder: the placeholder word; must be one token of the tokenizer.

    Returns:
        ``LongTensor [len(classnames), context_length]``.

    Raises:
        ValueError: the placeholder is not a single token, or a prompt does not fit the context length.
    """
    if n_ctx < 0:
        raise ValueError(f"n_ctx must be >= 0, got {n_ctx}")
    names = [c.replace("_", " ") for c in classnames]
    prefix = " ".join([placeholder] * n_ctx)
    texts = [(prefix + " " + template.format(c)) if n_ctx else template.format(c) for c in names]
    context_length = int(getattr(tokenizer, "context_length", 77))
    encode = getattr(tokenizer, "encode", None)
    if callable(encode):
        for text in texts:
            n_tokens = len(encode(text)) + 2  # + SOT + EOT
            if n_tokens > context_length:
                raise ValueError(f"prompt {text!r} needs {n_tokens} tokens, the context length is "
                                 f"{context_length}; shorten the template or use fewer context tokens")
    tokens = tokenizer(texts)  # [C, T]
    if n_ctx:
        ph = tokenizer([placeholder])[0]
        if int((ph != 0).sum()) != 3:
            raise ValueError(f"placeholder {placeholder!r} is not a single token of this tokenizer")
        ph_id = int(ph[1])
        if not bool((tokens[:, 1:1 + n_ctx] == ph_id).all()):
            raise ValueError(f"placeholders did not land at positions 1..{n_ctx}; check the template")
    return tokens
