"""DP-CLIP: what trains, frozen weights bit-identical, the three modules, the curriculum, test-time routing.

Built on random-weight ``sbirlab-nano`` CLIPs (32 px, 4 x 4 patch grid); the real ``ViT-B-32``
architecture (random weights, 7 x 7 grid) checks shapes and counts. A short ``ci``-preset training
run (3 steps) on the generated ``ci`` world is the smoke test.
"""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import math
import re

import open_clip
import pytest
import torch
import torch.nn.functional as F

import sbirlab  # noqa: F401  (registers the tiny configs)
from sbirlab.experiment import RunConfig, load_data, load_run, run_experiment
from sbirlab.models.methods.base import layernorm_parameters
from sbirlab.models.methods.dp_clip import (TEMPLATES, curriculum_weight, prompt_outputs, select_negatives,
                                            support_rows, window_boxes)
from sbirlab.models.registry import build_method

CLASSES = ["cat", "dog", "hot_air_balloon", "tree"]
LN = r"clip\.visual\.(ln_pre|ln_post|transformer\.resblocks\.\d+\.ln_[12])\.(weight|bias)"
NEW = [r"base_prompts", r"prompt_proj\.(weight|bias)", r"generator\..+", r"scalers\.\d+\..+",
       r"local_block\.ln_[12]\.(weight|bias)", r"local_ln_post\.\d\.(weight|bias)", r"local_proj\.\d"]


@pytest.fixture(scope="module")
def tokenizer():
    return open_clip.get_tokenizer("sbirlab-nano")


def nano_clip(seed=0):
    torch.manual_seed(seed)
    return open_clip.create_model("sbirlab-nano", pretrained=None)


def make(setting="zs", tokenizer=None, clip=None, seed=1, **cfg):
    clip = clip if clip is not None else nano_clip()
    torch.manual_seed(seed)
    return build_method("dp-clip", clip, setting, classnames=CLASSES, tokenizer=tokenizer, **cfg)


def images(n=4, size=32, seed=0):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def zs_batch(n_per_class=2, n_classes=2, size=32, progress=None):
    n = n_per_class * n_classes
    labels = torch.arange(n_classes).repeat_interleave(n_per_class)
    b = {"sketch": images(n, size, 1), "photo": images(n, size, 2), "photo_neg": images(n, size, 3),
         "label": labels, "label_neg": (labels + 1) % len(CLASSES), "index": torch.arange(n),
         "photo_index": torch.arange(n), "photo_neg_index": torch.arange(n) + 100}
    if progress is not None:
        b["progress"] = torch.tensor(progress)
    return b


def fg_batch(n=4, size=32):
    b = zs_batch(n, 1, size)
    b["photo_index"] = torch.tensor([0, 1, 1, 2][:n])  # anchors 1 and 2 share their photo
    return b


def names(m):
    return [n for n, _ in m.trainable_named_parameters()]


# ---------------------------------------------------------------------------------------------
# what trains


@pytest.mark.parametrize("setting", ["zs", "fg"])
def test_trainable_parameters_by_name(setting, tokenizer):
    m = make(setting, tokenizer)
    got = names(m)
    stray = [n for n in got if not any(re.fullmatch(p, n) for p in NEW + [LN])]
    assert not stray, stray
    for p in NEW + [LN]:
        assert any(re.fullmatch(p, n) for n in got), p
    lns = {f"clip.visual.{n}" for n, _ in layernorm_parameters(m.clip.visual)}
    assert {n for n in got if n.startswith("clip.")} == lns  # of CLIP itself: exactly its LayerNorms
    # the patch-matching block copy trains its LayerNorms only, its attention / MLP stay CLIP's
    assert not any(n.startswith("local_block.") and ".ln_" not in n for n in got)
    assert torch.equal(m.local_block.attn.in_proj_weight, m.clip.visual.transformer.resblocks[-1].attn.in_proj_weight)
    groups = {g["name"]: g for g in m.param_groups()}
    assert set(groups) == {"new", "layernorm"} and groups["layernorm"]["lr"] == m.cfg.lr_ln
    ids = [id(p) for g in groups.values() for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(got)


def test_ablation_switches_remove_their_modules(tokenizer):
    assert not any(n.startswith("scalers.") for n in names(make(tokenizer=tokenizer, text_scaling="none")))
    assert not any(n.startswith("local_") for n in names(make(tokenizer=tokenizer, patch_matching=False)))
    plain = names(make(tokenizer=tokenizer, visual_prompts=False))
    assert not any(n.startswith(("base_prompts", "generator", "prompt_proj")) for n in plain)
    assert set(names(make(tokenizer=tokenizer, tune_ln=False))).isdisjoint(
        {f"clip.visual.{n}" for n, _ in layernorm_parameters(nano_clip().visual)})


def test_counts_follow_the_backbone_nano(tokenizer):
    m = make("zs", tokenizer, rank=4)
    v = m.clip.visual
    D, E, L, K, r = 64, 64, 2, 3, 4
    H = v.transformer.resblocks[0].mlp.c_fc.out_features
    block = sum(p.numel() for p in v.transformer.resblocks[0].parameters())
    ln_block = 4 * D
    expected = (L * K * D + D * D + D + block  # base prompts, projection, generator block
                + L * (E * E + E + E * 2 * r + 2 * r + D * r + r * 3 * D + D * r + r * D)  # side-way scalers
                + ln_block + 4 * 2 * D + 4 * D * E  # local block LNs, ln_post and proj copies
                + 2 * D * (2 * L + 2))  # CLIP's LayerNorms
    assert sum(p.numel() for _, p in m.trainable_named_parameters()) == expected
    direct = make("zs", tokenizer, text_scaling="direct")
    n_direct = sum(p.numel() for n, p in direct.trainable_named_parameters() if n.startswith("scalers."))
    assert n_direct == L * (E * E + E + E * (3 * D + H) + 3 * D + H)
    assert H == 4 * D


# ---------------------------------------------------------------------------------------------
# one training step: frozen tensors bit-identical


@pytest.mark.parametrize("setting,text_scaling", [("zs", "side"), ("fg", "side"), ("zs", "direct")])
def test_training_changes_only_trainable_tensors(setting, text_scaling, tokenizer):
    m = make(setting, tokenizer, text_scaling=text_scaling)
    train = {n for n in names(m)}
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    buffers = {n: b.detach().clone() for n, b in m.named_buffers()}
    opt = torch.optim.AdamW(m.param_groups(), weight_decay=0.0)
    m.train()
    batch = zs_batch(progress=0.5) if setting == "zs" else fg_batch()
    # zero-initialised branches (LoRA B, generator output projections) pass gradient on from step 2
    for _ in range(3):
        loss, logs = m(batch)
        assert loss.requires_grad and math.isfinite(loss.item()) and loss.item() > 0
        opt.zero_grad()
        loss.backward()
        opt.step()
    for n, p in m.named_parameters():
        if n in train:
            assert not torch.equal(before[n], p), f"trainable {n} did not change"
        else:
            assert torch.equal(before[n], p), f"frozen {n} changed"
            assert p.grad is None, f"frozen {n} received a gradient"
    for n, b in m.named_buffers():
        assert torch.equal(buffers[n], b), n


def test_train_mode_keeps_the_backbone_in_eval(tokenizer):
    m = make(tokenizer=tokenizer).train()
    assert not m.clip.training and m.generator.training and m.prompt_drop.training


# ---------------------------------------------------------------------------------------------
# modules


def test_window_boxes_derive_from_the_grid():
    assert window_boxes((7, 7)) == [(0, 0, 5, 5), (0, 2, 5, 5), (2, 0, 5, 5), (2, 2, 5, 5)]  # ViT-B/32
    assert window_boxes((8, 8))[3] == (2, 2, 6, 6)  # the tiny CLIP at 64 px
    assert window_boxes((4, 4))[1] == (0, 1, 3, 3)  # nano
    assert window_boxes((14, 14))[0] == (0, 0, 10, 10)  # ViT-B/16
    assert window_boxes((4, 7)) == [(0, 0, 3, 5), (0, 2, 3, 5), (1, 0, 3, 5), (1, 2, 3, 5)]
    assert window_boxes((8, 8), window=4)[3] == (4, 4, 4, 4)
    with pytest.raises(ValueError, match="does not fit"):
        window_boxes((4, 4), window=5)


def test_encoder_without_modules_is_clip_and_deep_prompts_match_the_prompted_encoder(tokenizer):
    m = make(tokenizer=tokenizer).eval()
    x = images(3)
    with torch.no_grad():
        g, local = m.features(x, None, None, local=False)
        assert local is None
        assert torch.allclose(g, m.clip.encode_image(x), atol=1e-5)
        P = 0.1 * torch.randn(3, 2, 3, m.width)  # per-sample prompts [B, L, K, D]
        g, _ = m.features(x, P, None, local=False)
        ref = m.visual(x, prompts=P[:, 0], deep_prompts=[None, P[:, 1]])
        assert torch.allclose(g, ref, atol=1e-5)
        # side-way scaling with its B matrices at zero is the identity; the direct form likewise
        S = torch.randn(3, 2, 2 * m.cfg.rank)
        assert torch.allclose(m.features(x, P, S, local=False)[0], ref, atol=1e-5)
        d = make(tokenizer=tokenizer, text_scaling="direct").eval()
        assert torch.allclose(d.features(x, P, torch.zeros(3, 2, 3 * 64 + 256), local=False)[0], ref, atol=1e-5)


def test_prompt_outputs_equal_the_block_on_the_full_sequence(tokenizer):
    m = make(tokenizer=tokenizer)
    blk = m.clip.visual.transformer.resblocks[0]
    torch.manual_seed(0)
    context, prompts = torch.randn(2, 51, 64), torch.randn(2, 2, 3, 64)  # U = 2 support sets, L = 2 layers of K = 3
    fast = prompt_outputs(blk, context, prompts)
    for u in range(2):
        for layer in range(2):
            full = blk(torch.cat([context[u], prompts[u, layer]])[None])[0, -3:]
            assert torch.allclose(fast[u, layer], full, atol=1e-5)


def _reference_block(blk, x, scaler, s):
    """The scaled block as DP-CLIP computed it before it ran through the prompted encoder (literal code)."""
    def attention(h, delta=None, scale=None):
        attn = blk.attn
        B, T, D = h.shape
        qkv = F.linear(h, attn.in_proj_weight, attn.in_proj_bias)
        if delta is not None:
            qkv = qkv + delta
        if scale is not None:
            qkv = qkv * scale
        q, k, v = qkv.view(B, T, 3, attn.num_heads, D // attn.num_heads).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(q, k, v)
        return attn.out_proj(o.transpose(1, 2).reshape(B, T, D))

    if hasattr(scaler, "att_a"):  # side-way
        r = scaler.r
        s_att, s_mlp = 1 + s[:, None, :r], 1 + s[:, None, r:]
        h = blk.ln_1(x)
        x = x + blk.ls_1(attention(h, delta=scaler.att_b(scaler.att_a(h) * s_att)))
        h = blk.ln_2(x)
        return x + blk.ls_2(blk.mlp(h) + scaler.mlp_b(scaler.mlp_a(h) * s_mlp))
    d = scaler.d
    x = x + blk.ls_1(attention(blk.ln_1(x), scale=1 + s[:, None, :3 * d]))
    z = blk.ln_2(x)
    for name, mod in blk.mlp.named_children():
        if name == "c_proj":
            z = z * (1 + s[:, None, 3 * d:])
        z = mod(z)
    return x + blk.ls_2(z)


@pytest.mark.parametrize("text_scaling", ["side", "direct"])
def test_features_run_through_the_prompted_encoder_bit_identically(text_scaling, tokenizer):
    """DP-CLIP's forward is the prompted encoder with per-layer prompts and block edits; it equals the
    literal per-block loop (prompts replaced before every block, scaled blocks) bit for bit."""
    m = _perturbed(make(tokenizer=tokenizer, text_scaling=text_scaling)).eval()
    x = images(3)
    torch.manual_seed(0)
    P = 0.1 * torch.randn(3, 2, 3, m.width)
    S = 0.3 * torch.randn(3, 2, m.scalers[0].mlp[-1].out_features)
    with torch.no_grad():
        if text_scaling == "direct":
            for sc in m.scalers:
                sc.mlp[-1].weight.normal_(0, 0.1)
        g, local = m.features(x, P, S, local=True)
        assert torch.equal(g, m.visual(x, **m.encoder_inputs(P, S)))
        v = m.clip.visual
        t = v.ln_pre(torch.cat([m.visual.embed(x), P[:, 0]], dim=1))
        for layer, blk in enumerate(v.transformer.resblocks):
            if layer:
                t = torch.cat([t[:, :17], P[:, layer]], dim=1)
            pen = t[:, :17]
            t = _reference_block(blk, t, m.scalers[layer], S[:, layer])
        ref = v._pool(t[:, :17])[0] @ v.proj
        assert torch.equal(g, ref)
        assert torch.equal(local, m._local(pen, (4, 4)))
    with pytest.raises(ValueError, match="no scalers"):
        make(tokenizer=tokenizer, text_scaling="none").encoder_inputs(P, S)


def test_public_category_api(tokenizer):
    """categories / category_index / prepared_params / category_features / route_items / routed_labels /
    embed_items: what notebook 06 reads, without private names."""
    m = _perturbed(make(tokenizer=tokenizer)).eval()
    m.set_categories(CLASSES, {c: images(3, seed=i) for i, c in enumerate(CLASSES)})
    assert m.categories == CLASSES and m.categories is not m.categories  # a copy
    x = images(4, seed=9)
    with torch.no_grad():
        P, S = m.prepared_params()
        assert P.shape == (4, 2, 3, 64) and S.shape == (4, 2, 2 * m.cfg.rank)
        assert torch.equal(m.category_index(x), m.route(x))
        idx = m.category_index(x, ["dog", "cat", "tree", "dog"])
        assert idx.tolist() == [1, 0, 3, 1] and torch.equal(m.category_index(x, torch.tensor([1, 0, 3, 1])), idx)
        g, local = m.category_features(x, ["dog", "cat", "tree", "dog"])
        g2, local2 = m.features(x, P[idx], S[idx])
        assert torch.equal(g, g2) and torch.equal(local, local2) and local.shape == (4, 4, 64)
        assert m.category_features(x, local=False)[1] is None
        assert torch.equal(m.encode_photo(x, ["dog", "cat", "tree", "dog"]), F.normalize(m.fuse(g, local), dim=-1))
    items = _items(["cat", "dog", "tree", "cat", "dog"], "photo")
    loader = _Loader()
    routed = m.route_items(items, loader, chunk=2)
    with torch.no_grad():
        assert routed == m.route(loader.batch(items)).tolist()
    assert m.routed_labels(items, loader) == [CLASSES[j] for j in routed]
    assert len(m.route_items(items, loader, enough=0, chunk=2)) == 2  # stops after the first chunk
    emb = m.embed_items(items, "photo", loader, chunk=2)
    given = m.embed_items(items, "photo", loader, labels=True)
    with torch.no_grad():
        assert torch.equal(given[:2], m.encode_photo(loader.batch(items[:2]), ["cat", "dog"]))
    assert emb.shape == given.shape == (5, 5 * 64) and torch.allclose(emb.norm(dim=-1), torch.ones(5), atol=1e-5)
    with pytest.raises(ValueError, match="modality"):
        m.embed_items(items, "doodle", loader)
    with pytest.raises(RuntimeError, match="prepare_eval"):
        make(tokenizer=tokenizer).route_items(items, loader)


def test_text_scaling_makes_embeddings_category_specific(tokenizer):
    m = make(tokenizer=tokenizer, visual_prompts=False, patch_matching=False).eval()
    m.set_categories(CLASSES)
    x = images(2)
    with torch.no_grad():
        a, b = m.encode_sketch(x, labels=["cat", "cat"]), m.encode_sketch(x, labels=["dog", "dog"])
        assert torch.allclose(a, b, atol=1e-6)  # B = 0: no effect yet
        for sc in m.scalers:
            sc.att_b.weight.normal_(0, 0.1)
            sc.mlp_b.weight.normal_(0, 0.1)
        a, b = m.encode_sketch(x, labels=["cat", "cat"]), m.encode_sketch(x, labels=["dog", "dog"])
    assert not torch.allclose(a, b, atol=1e-4)


def test_local_embeddings_are_the_windows_through_the_block_copy(tokenizer):
    m = make(tokenizer=tokenizer).eval()
    pen = torch.randn(2, 1 + 16, m.width)  # CLS + 4 x 4 patches entering the last block
    with torch.no_grad():
        out = m._local(pen, (4, 4))
        grid = pen[:, 1:].reshape(2, 4, 4, -1)
        win = grid[:, 1:4, 1:4].reshape(2, 9, -1)  # bottom-right 3 x 3
        ref = m.local_block(torch.cat([pen[:, :1], win], 1))[:, 0]
        ref = m.local_ln_post[3](ref) @ m.local_proj[3]
    assert out.shape == (2, 4, m.visual.output_dim)
    assert torch.allclose(out[:, 3], ref, atol=1e-5)


def test_fused_embedding_ranks_by_the_fused_distance(tokenizer):
    m = make(tokenizer=tokenizer)
    g1, g2 = torch.randn(3, 64), torch.randn(5, 64)
    l1, l2 = torch.randn(3, 4, 64), torch.randn(5, 4, 64)
    e1, e2 = F.normalize(m.fuse(g1, l1), dim=-1), F.normalize(m.fuse(g2, l2), dim=-1)
    d = 1 - F.normalize(g1, dim=-1) @ F.normalize(g2, dim=-1).T
    for i in range(4):
        d = d + 0.2 * (1 - F.normalize(l1[:, i], dim=-1) @ F.normalize(l2[:, i], dim=-1).T)
    # sim = (5 * (1 + 4 * 0.2) / 5 - d) / (1 + 4 * 0.2): an affine, decreasing map of the fused distance
    assert torch.allclose(e1 @ e2.T, (1.8 - d) / 1.8, atol=1e-5)


def test_category_prompts_come_from_the_support_set(tokenizer):
    m = make(tokenizer=tokenizer).eval()
    text = m.category_text(["cat", "dog"])
    assert text.shape == (2, 64) and torch.allclose(text.norm(dim=-1), torch.ones(2), atol=1e-5)
    support = torch.stack([images(3, seed=5), images(3, seed=6)])  # [U, 3, 3, H, W]
    with torch.no_grad():
        p0, s0 = m.category_params(text, support)
        assert p0.shape == (2, 2, 3, 64) and s0.shape == (2, 2, 2 * m.cfg.rank)
        # at initialisation the generator is the identity: the prompts are the projected base prompts
        assert torch.allclose(p0[0], m.prompt_proj(m.base_prompts), atol=1e-5)
        m.generator.attn.out_proj.weight.normal_(0, 0.1)
        p1, _ = m.category_params(text, support)
    assert not torch.allclose(p1[0], p1[1], atol=1e-4)  # different support sets -> different prompts
    assert len(TEMPLATES) >= 20


# ---------------------------------------------------------------------------------------------
# negatives and the curriculum


def test_curriculum_weight_schedule():
    assert [curriculum_weight(p, "curriculum") for p in (0, 0.1, 1 / 6 + 1e-6, 0.34, 0.5, 0.67, 0.99, 1.0)] == \
        [0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    # the paper's w = 0.25 floor(epoch / 10) over 60 epochs (capped at 1)
    assert all(curriculum_weight(e / 60, "curriculum") == min(1.0, 0.25 * (e // 10)) for e in range(60))
    assert curriculum_weight(0.9, "random") == 0.0 and curriculum_weight(0.0, "batch-hard") == 1.0
    with pytest.raises(ValueError, match="negatives"):
        curriculum_weight(0.1, "semi-hard")


def test_select_negatives_zs_and_fg():
    y = torch.tensor([0, 0, 1, 1])
    dist = torch.tensor([[0.0, 0.1, 0.5, 0.3], [0.2, 0.0, 0.4, 0.9], [0.3, 0.6, 0.0, 0.1], [0.7, 0.2, 0.2, 0.0]])
    g = torch.Generator().manual_seed(0)
    rand, hard, has = select_negatives(dist, y, None, "zs", g)
    assert hard.tolist() == [3, 2, 0, 1] and has.all()
    assert all(y[r] != y[i] for i, r in enumerate(rand.tolist()))
    inst = torch.tensor([7, 7, 8, 9])  # anchors 0 and 1 share a photo: no valid FG negative for either
    rand, hard, has = select_negatives(dist, torch.zeros(4, dtype=torch.long), inst, "fg", g)
    assert has.tolist() == [True, True, True, True]
    rand, hard, has = select_negatives(dist, y, inst, "fg", g)
    assert has.tolist() == [False, False, True, True] and hard[2:].tolist() == [3, 2]


def test_loss_mixes_random_and_hard_by_progress(tokenizer):
    m = make(tokenizer=tokenizer, prompt_dropout=0.0).train()
    for progress, w in ((0.0, 0.0), (0.5, 0.75), (0.9, 1.0)):
        torch.manual_seed(0)
        loss, logs = m(zs_batch(progress=progress))
        assert logs["hard_weight"] == w
        parts = (1 - w) * logs.get("triplet_random", 0.0) + w * logs.get("triplet_hard", 0.0)
        assert loss.item() == pytest.approx(parts, rel=1e-5)
        assert ("triplet_random" in logs) == (w < 1) and ("triplet_hard" in logs) == (w > 0)
    hard = make(tokenizer=tokenizer, negatives="batch-hard")
    assert hard(zs_batch(progress=0.0))[1]["hard_weight"] == 1.0
    with pytest.raises(ValueError, match="single class"):
        m(zs_batch(4, 1))


def test_fg_uses_one_category_batches_and_falls_back_to_the_sampled_negative(tokenizer):
    fg, zs = make("fg", tokenizer), make("zs", tokenizer)
    assert fg.batch_classes == 1 and zs.batch_classes is None
    b = fg_batch()
    b["photo_index"] = torch.tensor([5, 5, 5, 5])  # one instance: no in-batch negative at all
    loss, logs = fg.train()(b)
    assert math.isfinite(loss.item())


# ---------------------------------------------------------------------------------------------
# category-level training never reads the label (issue 12): routed categories, or no category at all


def _perturbed(m):
    """Make prompts depend on the support set and scales act (both are neutral at initialisation)."""
    with torch.no_grad():
        m.generator.attn.out_proj.weight.normal_(0, 0.1)
        for sc in getattr(m, "scalers", []):
            if hasattr(sc, "att_b"):  # side-way: the LoRA up-projections start at zero
                sc.att_b.weight.normal_(0, 0.1)
                sc.mlp_b.weight.normal_(0, 0.1)
            else:  # direct: the scale head starts at zero
                sc.mlp[-1].weight.normal_(0, 0.1)
    return m


def _tagged(b):
    """Give every batch image an id in its first pixel: sketch i -> 1000 + i, photo j -> 2000 + j."""
    b = dict(b)
    b["sketch"], b["photo"] = b["sketch"].clone(), b["photo"].clone()
    b["sketch"][:, 0, 0, 0] = 1000 + torch.arange(len(b["sketch"])).float()
    b["photo"][:, 0, 0, 0] = 2000 + torch.arange(len(b["photo"])).float()
    return b


def _spy_vision(m, monkeypatch):
    """Record ``(images, prompts, scales, (global, local))`` of every ``features`` call."""
    calls = []
    real = m.features

    def spy(images, prompts, scales, local):
        out = real(images, prompts, scales, local)
        calls.append((images, prompts, scales, out))
        return out

    monkeypatch.setattr(m, "features", spy)
    return calls


def test_zs_training_prompts_follow_the_router_not_the_label(tokenizer, monkeypatch):
    """At category level a training image gets the prompts and scales of the category the frozen CLIP
    routes it to (here never its label), with that routed category's support set."""
    m = _perturbed(make("zs", tokenizer, prompt_dropout=0.0)).train()
    b = _tagged(zs_batch())  # labels [0, 0, 1, 1]
    guess = {1000: 3, 1001: 2, 1002: 2, 1003: 3, 2000: 2, 2001: 3, 2002: 3, 2003: 2}  # never the label
    monkeypatch.setattr(m, "route", lambda x, text=None: torch.tensor([guess[int(v)] for v in x[:, 0, 0, 0].round()]))
    calls = _spy_vision(m, monkeypatch)
    m(b)
    (sk, sk_p, sk_s, _), (ph, ph_p, ph_s, _) = calls[:2]
    assert torch.equal(sk, b["sketch"]) and torch.equal(ph, b["photo"])
    # the routed categories 2 and 3: support = first sketch + first two photos routed to each
    support = torch.stack([torch.stack([b["sketch"][1], b["photo"][0], b["photo"][3]]),
                           torch.stack([b["sketch"][0], b["photo"][1], b["photo"][2]])])
    with torch.no_grad():
        P, S = m.category_params(m.train_text[torch.tensor([2, 3])], support)
        by_label = torch.stack([sc.mlp(m.train_text[b["label"]]) for sc in m.scalers], dim=1)
    rs, rp = torch.tensor([1, 0, 0, 1]), torch.tensor([0, 1, 1, 0])  # guesses 3, 2, 2, 3 / 2, 3, 3, 2 -> rows of P
    for got, want in ((sk_s, S[rs]), (ph_s, S[rp]), (sk_p, P[rs]), (ph_p, P[rp])):
        torch.testing.assert_close(got, want)
    assert not torch.allclose(sk_s, by_label, atol=1e-4)  # the label's scales would differ


@pytest.mark.parametrize("opts", [{}, {"category_prompts": "none"}], ids=["routed", "none"])
def test_zs_training_embeddings_never_read_the_label(opts, tokenizer, monkeypatch):
    """Relabelling a category-level batch changes the loss's targets, never an embedding."""
    m = _perturbed(make("zs", tokenizer, prompt_dropout=0.0, **opts)).train()
    calls = _spy_vision(m, monkeypatch)
    b = zs_batch()
    m(b)
    m({**b, "label": torch.tensor([3, 3, 0, 0])})
    assert len(calls) == 4
    for first, again in zip(calls[:2], calls[2:]):
        torch.testing.assert_close(first[3][0], again[3][0], atol=0, rtol=0)
        torch.testing.assert_close(first[3][1], again[3][1], atol=0, rtol=0)


def test_fg_training_keeps_the_given_category(tokenizer, monkeypatch):
    """FG protocol: the category is given; training reads it and never routes."""
    m = make("fg", tokenizer, prompt_dropout=0.0).train()
    monkeypatch.setattr(m, "route", lambda *a, **k: (_ for _ in ()).throw(AssertionError("routed")))
    calls = _spy_vision(m, monkeypatch)
    b = {**fg_batch(), "label": torch.full((4,), 2)}
    m(b)
    with torch.no_grad():
        expect = torch.stack([sc.mlp(m.train_text[b["label"]]) for sc in m.scalers], dim=1)
    torch.testing.assert_close(calls[0][2], expect)
    torch.testing.assert_close(calls[1][2], expect)


def test_shared_prompts_give_every_image_one_set(tokenizer, monkeypatch):
    """``category_prompts="none"``: one prompt / scale set from the batch's first sketch and first two
    photos and the mean class text, in training; at test time from the first query and gallery items."""
    m = _perturbed(make("zs", tokenizer, prompt_dropout=0.0, category_prompts="none")).train()
    monkeypatch.setattr(m, "route", lambda *a, **k: (_ for _ in ()).throw(AssertionError("routed")))
    calls = _spy_vision(m, monkeypatch)
    b = zs_batch()
    m(b)
    with torch.no_grad():
        text = F.normalize(m.train_text.mean(0, keepdim=True), dim=-1)
        P, S = m.category_params(text, torch.stack([b["sketch"][0], b["photo"][0], b["photo"][1]])[None])
    for _, prompts, scales, _ in calls[:2]:
        torch.testing.assert_close(prompts, P.expand(4, -1, -1, -1))
        torch.testing.assert_close(scales, S.expand(4, -1, -1))
    m.eval()
    queries, gallery = _items(["dog", "cat"], "sketch"), _items(["cat", "tree", "dog"], "photo")
    loader = _Loader()
    m.prepare_eval(queries, gallery, loader)
    assert m.categories == ["cat", "dog", "tree"] and not m._support
    torch.testing.assert_close(m._shared_support, loader.batch([queries[0], gallery[0], gallery[1]]))
    x = images(2)
    with torch.no_grad():
        p, s = m.prepared_params()
        assert p.shape[0] == s.shape[0] == 1
        assert torch.equal(m.encode_photo(x), m.encode_photo(x, labels=["cat", "tree"]))  # labels: no effect
    with pytest.raises(ValueError, match="generic support"):
        m.set_categories(CLASSES, {c: images(3) for c in CLASSES})


# ---------------------------------------------------------------------------------------------
# test time: vocabulary, routing, cache


def _items(labels, modality):
    from sbirlab.data.base import Item
    return [Item(path=f"{modality}/{c}_{i}.png", label=c, modality=modality, instance=f"{c}_{i}")
            for i, c in enumerate(labels)]


class _Loader:
    """Stands in for ImageLoader: a deterministic image per item path."""

    def batch(self, items):
        return torch.stack([images(1, seed=abs(hash(it.path)) % 1000)[0] for it in items])


def test_prepare_eval_builds_support_sets_with_gap_filling(tokenizer, monkeypatch):
    m = make("fg", tokenizer=tokenizer).eval()  # FG: the support sets of the given categories
    queries = _items(["cat", "cat", "dog"], "sketch")
    gallery = _items(["cat", "cat", "cat", "tree"], "photo")
    seen = {}
    loader = _Loader()
    real = loader.batch
    loader.batch = lambda items: seen.setdefault(items[0].label, [i.path for i in items]) and real(items)
    m.prepare_eval(queries, gallery, loader)
    assert m.categories == ["cat", "dog", "tree"]
    assert seen["cat"] == ["sketch/cat_0.png", "photo/cat_0.png", "photo/cat_1.png"]  # 1 sketch + 2 photos
    assert seen["dog"] == ["sketch/dog_2.png"] * 3  # no photo: the one item repeated
    assert seen["tree"] == ["photo/tree_3.png"] * 3
    with torch.no_grad():
        f = m.encode_photo(images(2))
    assert f.shape == (2, 5 * 64)


class _TaggedLoader:
    """Images whose first pixel is the item's position in ``order`` (so a fake router can read it)."""

    def __init__(self, order):
        self.ids = {it.path: k for k, it in enumerate(order)}

    def batch(self, items):
        x = torch.stack([images(1, seed=self.ids[it.path])[0] for it in items])
        x[:, 0, 0, 0] = torch.tensor([float(self.ids[it.path]) for it in items])
        return x


def test_prepare_eval_zs_support_sets_are_routed_not_labelled(tokenizer, monkeypatch):
    """At category level the support set of a test category is the first sketch and first two photos
    the frozen router assigns to it, whatever their labels; a category nothing is routed to gets the
    generic support set (first query sketch, first two gallery photos)."""
    m = make("zs", tokenizer).eval()
    queries = _items(["cat", "cat", "dog", "tree"], "sketch")
    gallery = _items(["cat", "dog", "dog", "tree", "tree"], "photo")
    loader = _TaggedLoader(queries + gallery)
    # vocabulary cat, dog, tree = 0, 1, 2; routed: sketches dog, cat, dog, dog; photos dog, cat, cat, dog, dog
    guess = [1, 0, 1, 1, 1, 0, 0, 1, 1]
    monkeypatch.setattr(m, "route", lambda x, text=None: torch.tensor([guess[int(v)] for v in x[:, 0, 0, 0].round()]))
    m.prepare_eval(queries, gallery, loader)
    assert m.categories == ["cat", "dog", "tree"]
    q, g = queries, gallery
    torch.testing.assert_close(m._support["cat"], loader.batch([q[1], g[1], g[2]]))
    torch.testing.assert_close(m._support["dog"], loader.batch([q[0], g[0], g[3]]))
    torch.testing.assert_close(m._support["tree"], loader.batch([q[0], g[0], g[1]]))  # nothing routed: generic
    fg = make("fg", tokenizer).eval()  # FG: the category is given, the support sets are the categories' own
    monkeypatch.setattr(fg, "route", lambda *a, **k: (_ for _ in ()).throw(AssertionError("routed")))
    fg.prepare_eval(queries, gallery, loader)
    torch.testing.assert_close(fg._support["dog"], loader.batch([q[2], g[1], g[2]]))


def test_support_rows_fill_gaps_in_order():
    assert support_rows([0, 1, 0], [1, 0, 0, 0], 0) == [("sketch", 0), ("photo", 1), ("photo", 2)]
    assert support_rows([0, 1, 0], [1], 0) == [("sketch", 0), ("sketch", 2), ("sketch", 2)]
    assert support_rows([1], [0, 1, 1], 1) == [("sketch", 0), ("photo", 1), ("photo", 2)]
    assert support_rows([1, 1], [0], 0) == [("photo", 0)] * 3
    assert support_rows([1], [1], 0) == []


def test_routing_uses_the_original_clip_and_labels_skip_it(tokenizer, monkeypatch):
    m = make(tokenizer=tokenizer).eval()
    m.set_categories(CLASSES, {c: images(3, seed=i) for i, c in enumerate(CLASSES)})
    x = images(6, seed=9)
    with torch.no_grad():
        expect = (F.normalize(m.clip.encode_image(x), dim=-1) @ m._vocab_text.T).argmax(1)
        assert torch.equal(m.route(x), expect)
        for _, p in layernorm_parameters(m.clip.visual):  # LayerNorm tuning does not move the routing
            p.add_(torch.randn_like(p))
        assert torch.equal(m.route(x), expect)
        monkeypatch.setattr(m, "route", lambda x: (_ for _ in ()).throw(AssertionError("routed")))
        by_name = m.encode_sketch(x[:2], labels=["dog", "tree"])
        by_index = m.encode_sketch(x[:2], labels=torch.tensor([1, 3]))
    assert torch.equal(by_name, by_index)
    with pytest.raises(KeyError, match="prepared"):
        m.encode_sketch(x[:1], labels=["zebra"])


def test_category_cache_is_rebuilt_after_a_parameter_changes(tokenizer):
    m = make(tokenizer=tokenizer).eval()
    m.set_categories(CLASSES, {c: images(3, seed=i) for i, c in enumerate(CLASSES)})
    x = images(2)
    with torch.no_grad():
        a = m.encode_sketch(x, labels=["cat", "cat"])
        cache = m._cache
        assert torch.equal(m.encode_sketch(x, labels=["cat", "cat"]), a) and m._cache is cache
        m.base_prompts.add_(0.5)
        b = m.encode_sketch(x, labels=["cat", "cat"])
    assert m._cache is not cache and not torch.allclose(a, b)


def test_embedding_cache_key_follows_the_evaluation_categories(tokenizer):
    m = make(tokenizer=tokenizer).eval()
    sup = {c: images(3, seed=i) for i, c in enumerate(CLASSES)}
    m.set_categories(CLASSES, sup)
    k0 = m.embedding_cache_key()
    m.set_categories(CLASSES, sup)
    assert m.embedding_cache_key() == k0  # same state, same key
    m.set_categories(CLASSES[:3], sup)
    assert m.embedding_cache_key() != k0  # another vocabulary
    m.set_categories(CLASSES, {**sup, "cat": images(3, seed=99)})
    assert m.embedding_cache_key() != k0  # another support set
    keys = []
    for mode in ("routed", "none"):  # per-category scales or one shared set: other embeddings, other key
        t = make(tokenizer=tokenizer, visual_prompts=False, category_prompts=mode).eval()
        t.set_categories(CLASSES)
        keys.append(t.embedding_cache_key())
    assert keys[0] != keys[1]


def test_missing_vocabulary_and_bad_options_raise(tokenizer):
    m = make(tokenizer=tokenizer).eval()
    with pytest.raises(RuntimeError, match="prepare_eval"):
        m.encode_sketch(images(1))
    with pytest.raises(ValueError, match="support"):
        m.set_categories(["cat"])
    with pytest.raises(ValueError, match="text_scaling"):
        make(tokenizer=tokenizer, text_scaling="sideways")
    with pytest.raises(ValueError, match="category_prompts"):
        make(tokenizer=tokenizer, category_prompts="label")
    with pytest.raises(TypeError, match="rnak"):
        make(tokenizer=tokenizer, rnak=4)


def test_trainable_state_round_trip(tokenizer):
    a, b = make(tokenizer=tokenizer, seed=1), make(tokenizer=tokenizer, seed=2)
    with torch.no_grad():
        for _, p in a.trainable_named_parameters():
            p.add_(0.01 * torch.randn_like(p))
    b.load_trainable_state_dict(a.trainable_state_dict())
    sup = {c: images(3, seed=i) for i, c in enumerate(CLASSES)}
    for m in (a, b):
        m.eval().set_categories(CLASSES, sup)
    with torch.no_grad():
        assert torch.equal(a.encode_photo(images(2)), b.encode_photo(images(2)))


def test_checkpoint_restores_the_pristine_layernorms_on_a_tuned_backbone(tokenizer):
    clip = nano_clip()
    a = make(tokenizer=tokenizer, clip=clip)
    with torch.no_grad():  # training tunes the backbone's LayerNorms in place ...
        for _, p in layernorm_parameters(clip.visual):
            p.add_(0.3)
    state = a.trainable_state_dict()
    assert any(k.startswith("_ln_orig/") for k in state)
    b = make(tokenizer=tokenizer, clip=clip)  # ... so a method rebuilt on it would route with tuned ones
    assert not all(torch.equal(b._ln_orig[k], a._ln_orig[k]) for k in a._ln_orig)
    b.load_trainable_state_dict(state)
    assert all(torch.equal(b._ln_orig[k], a._ln_orig[k]) for k in a._ln_orig)
    sup = {c: images(3, seed=i) for i, c in enumerate(CLASSES)}
    for m in (a, b):
        m.eval().set_categories(CLASSES, sup)
    x = images(5, seed=3)
    assert torch.equal(a.route(x), b.route(x))
    with pytest.raises(KeyError, match="missing"):
        b.load_trainable_state_dict({k: v for k, v in state.items() if k.startswith("_ln_orig/")})


# ---------------------------------------------------------------------------------------------
# the real ViT-B/32 architecture (random weights)


@pytest.fixture(scope="module")
def vit_b32():
    torch.manual_seed(0)
    return open_clip.create_model("ViT-B-32", pretrained=None).eval(), open_clip.get_tokenizer("ViT-B-32")


def test_vit_b32_shapes_and_counts(vit_b32):
    clip, tok = vit_b32
    m = make("fg", tok, clip=clip, seed=0).eval()
    D, E, L, K, r = 768, 512, 12, 3, 16
    assert m.visual.grid_size == (7, 7) and window_boxes(m.visual.grid_size)[3] == (2, 2, 5, 5)
    block = sum(p.numel() for p in clip.visual.transformer.resblocks[0].parameters())
    expected = (L * K * D + D * D + D + block + L * (E * E + E + E * 2 * r + 2 * r + 5 * D * r + r * D)
                + 4 * D + 4 * 2 * D + 4 * D * E + 2 * D * (2 * L + 2))
    assert sum(p.numel() for _, p in m.trainable_named_parameters()) == expected
    m.set_categories(["cat", "dog"], {"cat": torch.randn(3, 3, 224, 224), "dog": torch.randn(3, 3, 224, 224)})
    with torch.no_grad():
        f = m.encode_sketch(torch.randn(2, 3, 224, 224), labels=["cat", "dog"])
    assert f.shape == (2, 5 * E) and torch.allclose(f.norm(dim=-1), torch.ones(2), atol=1e-5)
    clip.requires_grad_(False)


# ---------------------------------------------------------------------------------------------
# smoke: a few ci-preset steps through run_experiment, then load_run


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = os.environ.get("SBIRLAB_TEST_DATA") or str(tmp_path_factory.getbasetemp() / "sbirlab_data")
    old = os.environ.get("SBIRLAB_DATA")
    os.environ["SBIRLAB_DATA"] = root
    try:
        yield load_data(RunConfig(preset="ci", backbone="sbirlab-nano"))
    finally:
        if old is None:
            os.environ.pop("SBIRLAB_DATA", None)
        else:
            os.environ["SBIRLAB_DATA"] = old


def nano_backbone():
    from sbirlab.models.backbone import load_backbone
    torch.manual_seed(0)
    return load_backbone("sbirlab-nano")


@pytest.mark.parametrize("setting,opts", [("fg", {}), ("zs", {}), ("zs", {"category_prompts": "none"})],
                         ids=["fg", "zs", "zs-none"])
def test_ci_training_run_and_reload(setting, opts, world, tmp_path):
    _, parts = world
    cfg = RunConfig(method="dp-clip", setting=setting, preset="ci", backbone="sbirlab-nano", method_cfg=opts)
    metrics = run_experiment(cfg, tmp_path, progress=False, backbone=nano_backbone())
    assert metrics["train_steps"] == 3 and metrics["n_queries"] == len(parts.test_queries)
    key = "Acc@1" if setting == "fg" else "mAP@all"
    assert 0.0 <= metrics[key] <= 1.0
    import json
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["train"]["classes_per_batch"] == (1 if setting == "fg" else 4)  # FG: one category per batch
    run = load_run(tmp_path, backbone=nano_backbone())
    assert run.method.categories == sorted({i.label for i in parts.test_queries})  # test categories prepared
    from sbirlab.experiment import evaluate_setting
    again = evaluate_setting(run.method, run.parts, setting, run.loader)
    assert again[key] == pytest.approx(metrics[key], abs=1e-6)
