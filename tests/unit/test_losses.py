"""sbirlab.models.losses on hand-made cases."""
from __future__ import annotations

import math
from itertools import permutations

import numpy as np
import pytest
import torch

from sbirlab.models.losses import (
    _other_perms,
    classification_loss,
    cosine_distance,
    f_divergence_loss,
    pairwise_cosine_distance,
    patch_shuffle,
    patch_shuffle_triplet_loss,
    triplet_loss,
)


def t(x):
    return torch.tensor(x, dtype=torch.float64)


# ------------------------------------------------------------------------------ distances, triplet


def test_cosine_distance():
    a = t([[1.0, 0.0], [1.0, 0.0], [3.0, 0.0], [1.0, 1.0]])
    b = t([[0.0, 1.0], [-2.0, 0.0], [0.5, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(cosine_distance(a, b), [1.0, 2.0, 0.0, 1 - 1 / math.sqrt(2)], atol=1e-12)
    np.testing.assert_allclose(pairwise_cosine_distance(a[:2], b[:2]), [[1.0, 2.0], [1.0, 2.0]], atol=1e-12)


def test_triplet_loss_hand_made():
    anchor = t([[1.0, 0.0], [1.0, 0.0]])
    positive = t([[1.0, 0.0], [0.0, 1.0]])  # d = 0, 1
    negative = t([[0.0, 1.0], [1.0, 1.0]])  # d = 1, 1 - 1/sqrt(2)
    per = triplet_loss(anchor, positive, negative, margin=0.3, reduction="none")
    np.testing.assert_allclose(per, [0.0, 0.3 + 1 - (1 - 1 / math.sqrt(2))], atol=1e-12)
    assert triplet_loss(anchor, positive, negative).item() == pytest.approx(per.mean().item())
    expected = (0.2 + 1 - (1 - 1 / math.sqrt(2))) / 2  # the first triplet is inactive
    assert triplet_loss(anchor, positive, negative, margin=0.2).item() == pytest.approx(expected)
    # per-triplet margins (SpLIP's adaptive margin)
    per_m = triplet_loss(anchor, positive, negative, margin=t([1.5, 0.1]), reduction="none")
    np.testing.assert_allclose(per_m, [0.5, 0.1 + 1 / math.sqrt(2)], atol=1e-12)
    with pytest.raises(ValueError, match="margin"):
        triplet_loss(anchor, positive, negative, margin=t([0.1, 0.2, 0.3]))


def test_triplet_loss_gradient():
    anchor = torch.randn(4, 8, requires_grad=True)
    loss = triplet_loss(anchor, torch.randn(4, 8), torch.randn(4, 8), margin=2.0)  # margin 2: all active
    loss.backward()
    assert anchor.grad is not None and anchor.grad.abs().sum() > 0


# ------------------------------------------------------------------------------ classification


def test_classification_loss_hand_made():
    text = t([[1.0, 0.0], [0.0, 2.0]])  # normalised inside
    feats = t([[3.0, 0.0], [1.0, 1.0]])
    s = 10.0
    # sample 0: cos = (1, 0) -> logits (10, 0); sample 1: cos = (1/sqrt2, 1/sqrt2) -> equal logits
    l0 = math.log(1 + math.exp(-10))
    l1 = math.log(2)
    loss = classification_loss(feats, torch.tensor([0, 1]), text, s, reduction="none")
    np.testing.assert_allclose(loss, [l0, l1], atol=1e-12)
    wrong = classification_loss(feats, torch.tensor([1, 1]), text, s, reduction="none")
    assert wrong[0].item() == pytest.approx(10 + l0)
    # logit_scale as a tensor (model.logit_scale.exp()) and per-image class embeddings [B, N, D]
    per_image = text.unsqueeze(0).expand(2, 2, 2)
    got = classification_loss(feats, torch.tensor([0, 1]), per_image, torch.tensor(s, dtype=torch.float64))
    assert got.item() == pytest.approx((l0 + l1) / 2)


# ------------------------------------------------------------------------------ patch shuffling


def test_patch_shuffle_hand_made():
    img = torch.arange(16.0).reshape(1, 1, 4, 4)
    # tiles (row-major): 0 = [[0,1],[4,5]], 1 = [[2,3],[6,7]], 2 = [[8,9],[12,13]], 3 = [[10,11],[14,15]]
    out, perm = patch_shuffle(img, grid=2, perm=[3, 2, 1, 0])
    expected = torch.tensor([[10.0, 11, 8, 9], [14, 15, 12, 13], [2, 3, 0, 1], [6, 7, 4, 5]])
    assert torch.equal(out[0, 0], expected)
    assert perm.tolist() == [[3, 2, 1, 0]]
    out, _ = patch_shuffle(img, grid=2, perm=[1, 0, 2, 3])  # swap the two top tiles
    assert out[0, 0, 0].tolist() == [2.0, 3, 0, 1] and torch.equal(out[0, 0, 2:], img[0, 0, 2:])
    assert torch.equal(patch_shuffle(img, grid=2, perm=[0, 1, 2, 3])[0], img)


def test_patch_shuffle_random_batch_and_inverse():
    g = torch.Generator().manual_seed(0)
    imgs = torch.randn(5, 3, 6, 9)
    out, perm = patch_shuffle(imgs, grid=3, generator=g)
    assert out.shape == imgs.shape and perm.shape == (5, 9)
    inv = perm.argsort(dim=1)
    back, _ = patch_shuffle(out, grid=3, perm=inv)
    assert torch.equal(back, imgs)
    out2, perm2 = patch_shuffle(imgs, grid=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(perm, perm2) and torch.equal(out, out2)  # reproducible
    # same permutation on a paired image: tiles move together
    paired, _ = patch_shuffle(imgs * 2, grid=3, perm=perm)
    assert torch.allclose(paired, out * 2)


def test_patch_shuffle_errors():
    with pytest.raises(ValueError, match="divisible"):
        patch_shuffle(torch.zeros(1, 3, 5, 4), grid=2)
    with pytest.raises(ValueError, match="permutation"):
        patch_shuffle(torch.zeros(1, 3, 4, 4), grid=2, perm=[0, 0, 1, 2])
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        patch_shuffle(torch.zeros(3, 4, 4), grid=2)


def test_other_perms_differ_and_cover_all_others():
    g = torch.Generator().manual_seed(1)
    psi = torch.tensor([2, 0, 3, 1]).repeat(2000, 1)
    other = _other_perms(psi, g)
    assert not (other == psi).all(dim=1).any()
    seen = {tuple(r) for r in other.tolist()}
    assert len(seen) == 23 and set(seen) <= set(permutations(range(4)))


def _tile_onehot_images(batch: int) -> torch.Tensor:
    """[B, 4, 4, 4]: tile t of every image is all ones in channel t, zeros elsewhere."""
    img = torch.zeros(4, 4, 4)
    for tile in range(4):
        r, c = divmod(tile, 2)
        img[tile, 2 * r : 2 * r + 2, 2 * c : 2 * c + 2] = 1.0
    return img.expand(batch, 4, 4, 4).clone()


def test_patch_shuffle_triplet_loss_hand_made():
    photos = _tile_onehot_images(64)
    flatten = lambda x: x.flatten(1)  # noqa: E731 - an "encoder" with known geometry
    # identical sketch and photo -> d(anchor, positive) = 0; the negative keeps f tiles in place, f <= 2
    # (psi' != psi), so cos(anchor, negative) = f / 4 and, with margin 1, the loss is exactly f / 4
    gen = torch.Generator().manual_seed(0)
    per = patch_shuffle_triplet_loss(flatten, photos, photos, margin=1.0, generator=gen, reduction="none")
    fixed = per * 4
    assert torch.allclose(fixed, fixed.round(), atol=1e-6)
    assert set(fixed.round().int().tolist()) <= {0, 1, 2} and len(set(fixed.round().int().tolist())) >= 2
    # photos whose tiles are all equal: every shuffle is the same image, so the loss is the margin
    flat_photos = torch.ones(8, 3, 4, 4)
    loss = patch_shuffle_triplet_loss(flatten, flat_photos, flat_photos, margin=0.3)
    assert loss.item() == pytest.approx(0.3)


def test_patch_shuffle_triplet_loss_encoders_and_grad():
    calls = {"sketch": [], "photo": []}
    w = torch.randn(48, 8, requires_grad=True)

    def enc(name):
        def f(x):
            calls[name].append(x.shape[0])
            return x.flatten(1) @ w

        return f

    sk, ph = torch.randn(6, 3, 4, 4), torch.randn(6, 3, 4, 4)
    loss = patch_shuffle_triplet_loss(None, sk, ph, margin=5.0, encode_sketch=enc("sketch"), encode_photo=enc("photo"))
    loss.backward()
    assert calls == {"sketch": [6], "photo": [12]}  # positives and negatives in one photo forward
    assert w.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="encode"):
        patch_shuffle_triplet_loss(None, sk, ph, margin=0.3)
    with pytest.raises(ValueError, match="grid"):
        patch_shuffle_triplet_loss(enc("sketch"), sk, ph, margin=0.3, grid=1)


# ------------------------------------------------------------------------------ f-divergence


def _two_class_batch():
    # class 7: two pairs in the plane; class 3: the same geometry with swapped axes (cosines equal)
    s7 = t([[1.0, 0.0, 0.0, 0.0], [0.6, 0.8, 0.0, 0.0]])
    p7 = t([[0.8, 0.6, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    s3, p3 = s7[:, [2, 3, 0, 1]], p7[:, [2, 3, 0, 1]]
    anchor = torch.cat([s7, s3])
    photos = torch.cat([p7, p3])
    labels = torch.tensor([7, 7, 3, 3])
    return anchor, photos, labels


def test_f_divergence_zero_for_identical_class_geometry():
    anchor, photos, labels = _two_class_batch()
    loss, dist = f_divergence_loss(anchor, photos, labels, temperature=0.1, return_distributions=True)
    assert loss.item() == 0.0
    assert torch.equal(dist[0], dist[1]) and torch.allclose(dist.sum(1), torch.ones(2, dtype=dist.dtype))


def test_f_divergence_hand_made_value_and_grad():
    anchor, photos, labels = _two_class_batch()
    photos = photos.clone()
    photos[2] = t([1.0, 0.0, 0.0, 0.0])  # class 3: first sketch now far from its paired photo
    photos.requires_grad_()
    tau = 0.5
    loss, dist = f_divergence_loss(anchor, photos, labels, temperature=tau, return_distributions=True)

    def class_dist(sk, ph):  # the docstring's recipe for B_c = 2: [q(paired), q(other)] averaged
        d = 1 - (sk / sk.norm(dim=1, keepdim=True)) @ (ph / ph.norm(dim=1, keepdim=True)).T
        q = torch.softmax(-d / tau, dim=1)
        return torch.stack([torch.stack([q[i, i], q[i, 1 - i]]) for i in range(2)]).mean(0)

    d3 = class_dist(anchor[2:], photos[2:].detach())  # label 3 comes first (increasing label order)
    d7 = class_dist(anchor[:2], photos[:2].detach())
    kl = lambda p, q: (p * (p / q).log()).sum()  # noqa: E731
    expected = (kl(d3, d7) + kl(d7, d3)) / 2
    assert torch.allclose(dist, torch.stack([d3, d7]))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-10)
    assert loss.item() > 1e-3
    loss.backward()
    assert torch.isfinite(photos.grad).all() and photos.grad.abs().sum() > 0


def test_f_divergence_three_classes_sorted_negatives_and_errors():
    g = torch.Generator().manual_seed(0)
    base_s, base_p = torch.randn(4, 16, generator=g), torch.randn(4, 16, generator=g)
    # a class whose pairs are a row permutation of another: the same distribution (order-free)
    perm = torch.tensor([2, 0, 3, 1])
    anchor = torch.cat([base_s, base_s[perm]])
    photos = torch.cat([base_p, base_p[perm]])
    labels = torch.tensor([0] * 4 + [1] * 4)
    assert f_divergence_loss(anchor, photos, labels).item() == pytest.approx(0.0, abs=1e-12)
    # a third, different class makes it positive
    anchor3 = torch.cat([anchor, torch.randn(4, 16, generator=g)])
    photos3 = torch.cat([photos, torch.randn(4, 16, generator=g)])
    labels3 = torch.cat([labels, torch.full((4,), 2)])
    assert f_divergence_loss(anchor3, photos3, labels3).item() > 0
    # one class only: 0, still part of the graph
    a = torch.randn(3, 5, requires_grad=True)
    single = f_divergence_loss(a, torch.randn(3, 5), torch.zeros(3, dtype=torch.long))
    single.backward()
    assert single.item() == 0.0 and a.grad is not None
    with pytest.raises(ValueError, match="same number of pairs"):
        f_divergence_loss(torch.randn(3, 5), torch.randn(3, 5), torch.tensor([0, 0, 1]))
