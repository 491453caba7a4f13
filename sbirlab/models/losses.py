"""Training losses of the CLIP-based ZS-SBIR methods (docs/methods.md §0.2, §3-§4).

Papers:

* CLIP-AT -- Sain et al., *CLIP for All Things Zero-Shot Sketch-Based Image Retrieval, Fine-Grained or
  Not*, CVPR 2023 (arXiv 2303.13440): cosine triplet loss, text-classification loss, patch-shuffling
  triplet loss and the f-divergence loss of its fine-grained variant.
* SpLIP -- Singha et al., ECCV 2024 (arXiv 2407.04207): the adaptive-margin triplet, which passes a
  per-triplet margin tensor to :func:`triplet_loss`.

Distances are cosine distances ``d(a, b) = 1 - cos(a, b)`` throughout; embeddings need not be
normalised (every function normalises what it compares). All losses are differentiable and reduce
to a scalar (mean over the batch) unless ``reduction="none"``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "cosine_distance",
    "pairwise_cosine_distance",
    "triplet_loss",
    "classification_loss",
    "patch_shuffle",
    "patch_shuffle_triplet_loss",
    "f_divergence_loss",
]

Tensor = torch.Tensor


def cosine_distance(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """Row-wise cosine distance ``1 - cos(a, b)`` along the last dimension.

    Args:
        a, b: ``[..., D]`` embeddings (broadcastable).
        eps: guards the norms of all-zero vectors.

    Returns:
        ``[...]`` distances in ``[0, 2]``.
    """
    return 1.0 - F.cosine_similarity(a, b, dim=-1, eps=eps)


def pairwise_cosine_distance(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """All-pairs cosine distance: ``[..., N, D]`` x ``[..., M, D]`` -> ``[..., N, M]``."""
    a = F.normalize(a, dim=-1, eps=eps)
    b = F.normalize(b, dim=-1, eps=eps)
    return 1.0 - a @ b.transpose(-1, -2)


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def triplet_loss(
    anchor: Tensor,
    positive: Tensor,
    negative: Tensor,
    margin: float | Tensor = 0.3,
    reduction: str = "mean",
) -> Tensor:
    """Cosine-distance triplet loss ``mean max(0, margin + d(a, p) - d(a, n))``.

    CLIP-AT (Sain et al. 2023) ``L_tri``; docs/methods.md §4.3 decision: margin 0.3 by default
    (ClipPrompt's value; CLIP-AT's official code uses 0.2 -- pass it explicitly to reproduce that).
    The same function serves the category-level triplet (``p`` a photo of the sketch's class, ``n`` of
    another class), the fine-grained one (``p`` the paired photo, ``n`` another photo of the same
    class) and SpLIP's adaptive margin, which passes a per-triplet tensor
    ``margin = cos(T_{c+}, T_{c-})`` (docs/methods.md §6.4).

    Args:
        anchor, positive, negative: ``[B, D]`` embeddings.
        margin: a float, or a ``[B]`` tensor of per-triplet margins (not differentiated through
            unless it requires grad).
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (``[B]`` per-triplet losses).
    """
    d_ap = cosine_distance(anchor, positive)
    d_an = cosine_distance(anchor, negative)
    if isinstance(margin, Tensor):
        margin = margin.to(d_ap.dtype)
        if margin.dim() > 0 and margin.shape != d_ap.shape:
            raise ValueError(f"margin tensor of shape {tuple(margin.shape)} for {d_ap.shape[0]} triplets")
    return _reduce(F.relu(margin + d_ap - d_an), reduction)


def classification_loss(
    feats: Tensor,
    labels: Tensor,
    class_text_feats: Tensor,
    logit_scale: float | Tensor,
    reduction: str = "mean",
) -> Tensor:
    """Cross-entropy of image embeddings against class text embeddings: ``CE(cos(f, T_c) * s, y)``.

    CLIP-AT (Sain et al. 2023) ``L_cls`` (docs/methods.md §4.3): ``T_c`` are the frozen text
    encoder's embeddings of "a photo of a {class}" for the seen classes and ``s = 1 / tau`` is CLIP's
    ``logit_scale.exp()`` (100 for OpenAI CLIP). CLIP-AT's total is one term per modality; this
    function computes **one** term, and the caller sums them::

        s = model.logit_scale.exp()
        l_cls = (classification_loss(sk_feats, labels, text_feats, s)
                 + classification_loss(ph_feats, labels, text_feats, s))

    SpLIP's ``L_class`` is the same loss against its prompted (image-conditioned) class embeddings:
    pass them as a ``[B, N_cls, D]`` tensor (one set of class embeddings per image).

    Args:
        feats: ``[B, D]`` image embeddings.
        labels: ``[B]`` class indices into ``class_text_feats``.
        class_text_feats: ``[N_cls, D]`` (or ``[B, N_cls, D]``) class text embeddings.
        logit_scale: the **exponentiated** scale ``1 / tau`` (pass ``model.logit_scale.exp()``).
        reduction: as :func:`torch.nn.functional.cross_entropy`.
    """
    f = F.normalize(feats, dim=-1)
    t = F.normalize(class_text_feats, dim=-1)
    if t.dim() == 2:
        logits = f @ t.t()  # [B, N_cls]
    elif t.dim() == 3:
        logits = torch.einsum("bd,bcd->bc", f, t)
    else:
        raise ValueError(f"class_text_feats must be [N_cls, D] or [B, N_cls, D], got {tuple(t.shape)}")
    return F.cross_entropy(logits * logit_scale, labels, reduction=reduction)


# --------------------------------------------------------------------------------------------
# patch shuffling (CLIP-AT fine-grained)


def _random_perms(batch: int, n: int, generator: torch.Generator | None, device) -> Tensor:
    """``[batch, n]`` independent uniform random permutations of ``range(n)``."""
    gen_device = generator.device if generator is not None else device
    noise = torch.rand(batch, n, generator=generator, device=gen_device)
    return noise.argsort(dim=1).to(device)


def _other_perms(perm: Tensor, generator: torch.Generator | None) -> Tensor:
    """A uniform random permutation different from each row of ``perm`` (``[B, n]``, n >= 2)."""
    batch, n = perm.shape
    # perm o sigma with sigma uniform over the non-identity permutations is uniform over the
    # permutations other than perm
    sigma = _random_perms(batch, n, generator, perm.device)
    ident = torch.arange(n, device=perm.device)
    same = (sigma == ident).all(dim=1)
    while bool(same.any()):
        sigma[same] = _random_perms(int(same.sum()), n, generator, perm.device)
        same = (sigma == ident).all(dim=1)
    return perm.gather(1, sigma)


def patch_shuffle(
    images: Tensor,
    grid: int = 2,
    perm: Tensor | Sequence[int] | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Cut images into a ``grid x grid`` grid of tiles and shuffle the tiles.

    CLIP-AT's patch shuffling (docs/methods.md §4.4, decision ``grid = 2``). Tiles are numbered in
    row-major order; output tile ``t`` is input tile ``perm[t]``.

    Args:
        images: ``[B, C, H, W]``; ``H`` and ``W`` must be divisible by ``grid``.
        grid: tiles per side.
        perm: ``[grid**2]`` (one permutation for the whole batch) or ``[B, grid**2]`` (one per image);
            default: an independent uniform random permutation per image.
        generator: torch random generator for the default permutations (reproducibility).

    Returns:
        ``(shuffled, perm)``: the ``[B, C, H, W]`` shuffled images and the ``[B, grid**2]`` permutations
        used (pass ``perm`` back to shuffle paired images identically).

    Raises:
        ValueError: images not 4-D, sides not divisible by ``grid``, or ``perm`` not a permutation.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be [B, C, H, W], got shape {tuple(images.shape)}")
    if grid < 1:
        raise ValueError(f"grid must be >= 1, got {grid}")
    B, C, H, W = images.shape
    if H % grid or W % grid:
        raise ValueError(f"image size {H}x{W} is not divisible by grid={grid}: crop or resize first")
    n = grid * grid
    if perm is None:
        perm = _random_perms(B, n, generator, images.device)
    else:
        perm = torch.as_tensor(perm, dtype=torch.long, device=images.device)
        if perm.dim() == 1:
            perm = perm.unsqueeze(0).expand(B, n)
        if perm.shape != (B, n):
            raise ValueError(f"perm must be [{n}] or [{B}, {n}], got {tuple(perm.shape)}")
        if not bool((perm.sort(dim=1).values == torch.arange(n, device=perm.device)).all()):
            raise ValueError("perm rows must be permutations of range(grid**2)")
    h, w = H // grid, W // grid
    tiles = images.reshape(B, C, grid, h, grid, w).permute(0, 2, 4, 1, 3, 5).reshape(B, n, C, h, w)
    idx = perm.reshape(B, n, 1, 1, 1).expand(B, n, C, h, w)
    out = tiles.gather(1, idx)  # [B, n, C, h, w]
    out = out.reshape(B, grid, grid, C, h, w).permute(0, 3, 1, 4, 2, 5).reshape(B, C, H, W)
    return out, perm


def patch_shuffle_triplet_loss(
    encode: Callable[[Tensor], Tensor] | None,
    sketches: Tensor,
    photos: Tensor,
    margin: float | Tensor = 0.3,
    grid: int = 2,
    generator: torch.Generator | None = None,
    encode_sketch: Callable[[Tensor], Tensor] | None = None,
    encode_photo: Callable[[Tensor], Tensor] | None = None,
    reduction: str = "mean",
) -> Tensor:
    """CLIP-AT's patch-shuffling triplet loss ``L_PS`` (fine-grained; docs/methods.md §4.4).

    Each sketch and its paired photo are shuffled with the same random permutation ``psi``
    (anchor and positive); the photo is shuffled again with another permutation ``psi' != psi``
    (negative). The loss is :func:`triplet_loss` on the embeddings of the shuffled images, with the
    same margin as the main triplet. DECISION (docs/methods.md §4.4): ``grid = 2``; ``psi`` is drawn per pair
    and ``psi'`` uniformly among the other ``grid**2! - 1`` permutations.

    Args:
        encode: images -> ``[B, D]`` embeddings, used for both modalities unless ``encode_sketch`` /
            ``encode_photo`` are given (CLIP-AT's FG model shares one prompt for both).
        sketches, photos: ``[B, C, H, W]``, ``photos[i]`` paired with ``sketches[i]``.
        margin: float or ``[B]`` tensor, as :func:`triplet_loss`.
        grid: tiles per side (>= 2).
        generator: torch generator for the permutations.
        encode_sketch, encode_photo: per-modality encoders (override ``encode``).
        reduction: as :func:`triplet_loss`.
    """
    enc_s = encode_sketch or encode
    enc_p = encode_photo or encode
    if enc_s is None or enc_p is None:
        raise ValueError("pass encode, or both encode_sketch and encode_photo")
    if sketches.shape[0] != photos.shape[0]:
        raise ValueError(f"{sketches.shape[0]} sketches but {photos.shape[0]} photos")
    if grid < 2:
        raise ValueError("grid must be >= 2: with one tile there is no second permutation")
    sk_shuf, psi = patch_shuffle(sketches, grid, generator=generator)
    ph_pos, _ = patch_shuffle(photos, grid, perm=psi)
    ph_neg, _ = patch_shuffle(photos, grid, perm=_other_perms(psi, generator))
    anchor = enc_s(sk_shuf)
    ph = enc_p(torch.cat([ph_pos, ph_neg]))  # one forward for both photo views
    positive, negative = ph.split(sketches.shape[0])
    return triplet_loss(anchor, positive, negative, margin, reduction)


# --------------------------------------------------------------------------------------------
# f-divergence (CLIP-AT fine-grained)


def f_divergence_loss(
    anchor: Tensor,
    photos: Tensor,
    labels: Tensor,
    temperature: float = 0.1,
    return_distributions: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """CLIP-AT's f-divergence loss ``L_delta``: the sketch-photo separation should look alike in every class.

    docs/methods.md §4.4 decision (our reconstruction of the paper's figure), made precise here:

    1. The batch holds the same number ``B_c`` of (sketch, paired photo) pairs from each of ``N``
       classes; ``photos[i]`` is the paired photo of ``anchor[i]``.
    2. For sketch ``i`` of class ``c``: ``q_i = softmax_k(-d(anchor_i, photo_k) / temperature)`` over
       the ``B_c`` photos ``k`` of class ``c`` (its paired photo and the same-class negatives).
    3. ``q_i`` is put in a class-independent order: the paired photo's probability first, then the
       negatives' probabilities sorted in decreasing order (sorting is differentiable almost
       everywhere, as for any max). Without this, "photo number k" would mean nothing across classes.
    4. ``D_c`` = the mean of these vectors over the sketches of class ``c`` (a distribution over
       ``B_c`` slots).
    5. Loss = the mean of ``KL(D_a || D_b)`` over all **ordered** pairs of distinct classes, i.e. the
       mean symmetric KL ``(KL(D_a||D_b) + KL(D_b||D_a)) / 2`` over unordered pairs.

    It is 0 exactly when every class has the same distribution, positive otherwise, and 0 for a batch
    with a single class or ``B_c = 1``. ``temperature`` (default 0.1 on distances in ``[0, 2]``) is our
    choice; the paper gives none.

    Args:
        anchor: ``[B, D]`` sketch embeddings.
        photos: ``[B, D]`` paired photo embeddings.
        labels: ``[B]`` class of each pair (any integer ids).
        temperature: softmax temperature on the distances.
        return_distributions: also return the ``[N, B_c]`` class distributions ``D_c`` (classes in
            increasing label order).

    Raises:
        ValueError: shapes disagree or classes hold different numbers of pairs.
    """
    if anchor.shape != photos.shape or anchor.dim() != 2:
        raise ValueError(f"anchor and photos must both be [B, D], got {tuple(anchor.shape)}, {tuple(photos.shape)}")
    labels = torch.as_tensor(labels, device=anchor.device)
    if labels.shape != anchor.shape[:1]:
        raise ValueError(f"labels must be [{anchor.shape[0]}], got {tuple(labels.shape)}")
    classes, counts = labels.unique(return_counts=True)
    if bool((counts != counts[0]).any()):
        raise ValueError(
            f"f_divergence_loss needs the same number of pairs per class, got {counts.tolist()} "
            "(use a class-balanced batch sampler)"
        )
    n_cls, b_c = len(classes), int(counts[0])
    idx = labels.argsort(stable=True).reshape(n_cls, b_c)  # [N, B_c], classes in increasing order
    s = anchor[idx]  # [N, B_c, D]
    p = photos[idx]  # [N, B_c, D]
    logits = -pairwise_cosine_distance(s, p) / temperature  # [N, B_c (sketch), B_c (photo)]
    q = logits.softmax(dim=-1)
    q_pos = q.diagonal(dim1=1, dim2=2).unsqueeze(-1)  # [N, B_c, 1]
    off = ~torch.eye(b_c, dtype=torch.bool, device=q.device)
    q_neg = q[:, off].reshape(n_cls, b_c, b_c - 1)  # [N, B_c, B_c - 1]  (q[:, off] is [N, B_c*(B_c-1)])
    q_neg = q_neg.sort(dim=-1, descending=True).values
    dist = torch.cat([q_pos, q_neg], dim=-1).mean(dim=1)  # [N, B_c], rows sum to 1
    if n_cls < 2:
        loss = dist.sum() * 0.0  # keeps the graph
    else:
        log_d = dist.clamp_min(torch.finfo(dist.dtype).tiny).log()
        # kl[a, b] = sum_k D_a[k] (log D_a[k] - log D_b[k]); elementwise so that equal rows give
        # exactly 0 (a matmul would sum in another order)
        kl = (dist[:, None, :] * (log_d[:, None, :] - log_d[None, :, :])).sum(-1)  # [N, N]
        loss = kl.sum() / (n_cls * (n_cls - 1))  # the diagonal is exactly 0
    if return_distributions:
        return loss, dist
    return loss


# ---------------------------------------------------------------------------------------------
# the global batch under torch.distributed (batch-hard negatives are mined over every rank's photos)

def gather_rows(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Concatenate each tensor's rows over the ranks (rank order); identity in a single process.

    Floating tensors that require grad are gathered differentiably
    (``torch.distributed.nn.functional.all_gather``: the backward sends every rank's gradient back
    to the rank that owns the rows), so a loss computed on a rank's own rows against the gathered
    rows has, after DDP's gradient averaging, the gradient of the global batch's mean loss. Ranks may
    hold different numbers of rows (padded for the collective, trimmed after). Every rank must call
    this with the same number of tensors, in the same order.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1) or not tensors:
        return tensors
    import torch.distributed.nn.functional as dist_fn

    world = dist.get_world_size()
    dev = tensors[0].device
    n = torch.tensor([tensors[0].shape[0]], dtype=torch.long, device=dev)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    sizes = [int(x) for x in sizes]
    m = max(sizes)
    out = []
    for t in tensors:
        if t.shape[0] != int(n):
            raise ValueError(f"gather_rows: tensors of one call must have the same number of rows, "
                             f"got {t.shape[0]} and {int(n)}")
        pad = t if t.shape[0] == m else torch.cat([t, t.new_zeros((m - t.shape[0], *t.shape[1:]))])
        if t.requires_grad and t.is_floating_point():
            parts = dist_fn.all_gather(pad)
        else:
            parts = [torch.empty_like(pad) for _ in range(world)]
            dist.all_gather(parts, pad.contiguous())
        out.append(torch.cat([q[:k] for q, k in zip(parts, sizes)]))
    return tuple(out)
