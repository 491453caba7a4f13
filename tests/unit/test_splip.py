"""SpLIP: what trains, frozen weights bit-identical, the three mapping blocks, margins, the jigsaw.

Built on random-weight ``sbirlab-nano`` CLIPs (32 px); the real ``ViT-B-32`` architecture (random
weights) checks shapes and counts; a short ``ci``-preset run (3 steps) in ``zs`` and ``gzs`` is the
smoke test.
"""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import itertools
import math
import re

import open_clip
import pytest
import torch
import torch.nn.functional as F

import sbirlab  # noqa: F401  (registers the tiny configs)
from sbirlab.experiment import RunConfig, load_data, load_run, run_experiment
from sbirlab.models.methods.base import layernorm_parameters
from sbirlab.models.methods.splip import jigsaw_permutations, shuffle_tiles, tile_features
from sbirlab.models.registry import build_method
from sbirlab.models.losses import patch_shuffle

CLASSES = ["cat", "dog", "hot_air_balloon", "tree"]
LN = r"clip\.visual\.(ln_pre|ln_post|transformer\.resblocks\.\d+\.ln_[12])\.(weight|bias)"
NEW = [r"b_t\..+", r"b_v\..+", r"b_vt\..+", r"head\..+"]


@pytest.fixture(scope="module")
def tokenizer():
    return open_clip.get_tokenizer("sbirlab-nano")


def nano_clip(seed=0):
    torch.manual_seed(seed)
    return open_clip.create_model("sbirlab-nano", pretrained=None)


def make(setting="zs", tokenizer=None, clip=None, seed=1, **cfg):
    clip = clip if clip is not None else nano_clip()
    torch.manual_seed(seed)
    return build_method("splip", clip, setting, classnames=CLASSES, tokenizer=tokenizer, **cfg)


def images(n=4, size=32, seed=0):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def batch(setting="zs", n=4, size=32):
    labels = torch.tensor([0, 0, 1, 1]) if setting == "zs" else torch.zeros(n, dtype=torch.long)
    return {"sketch": images(n, size, 1), "photo": images(n, size, 2), "photo_neg": images(n, size, 3),
            "label": labels, "label_neg": (labels + 1) % len(CLASSES), "photo_index": torch.arange(n)}


def names(m):
    return [n for n, _ in m.trainable_named_parameters()]


def mlp_count(i, h, o):  # LayerNorm + Linear + Linear
    return 2 * i + i * h + h + h * o + o


def head_count(d, w, tiles, classes, layers):
    enc_layer = 4 * w * w + 4 * w + 2 * (w * 2 * w) + 2 * w + w + 4 * w  # attention, MLP (2w), two LayerNorms
    return d * w + w + 2 * tiles * w + w + layers * enc_layer + 2 * w + w * classes + classes


# ---------------------------------------------------------------------------------------------
# what trains


@pytest.mark.parametrize("setting", ["zs", "fg"])
def test_trainable_parameters_by_name_and_count(setting, tokenizer):
    m = make(setting, tokenizer)
    got = names(m)
    assert not [n for n in got if not any(re.fullmatch(p, n) for p in NEW + [LN])]
    for p in NEW + [LN]:
        assert any(re.fullmatch(p, n) for n in got), p
    lns = {f"clip.visual.{n}" for n, _ in layernorm_parameters(m.clip.visual)}
    assert {n for n in got if n.startswith("clip.")} == lns  # the text encoder stays frozen
    D = W = 64
    L = 2
    expected = (mlp_count(D, D, 4 * W) + mlp_count(W, W, D) + mlp_count(W, W, 2 * D)
                + head_count(D, 64, 9, 30, 2) + 2 * D * (2 * L + 2))
    assert sum(p.numel() for _, p in m.trainable_named_parameters()) == expected
    groups = {g["name"]: g for g in m.param_groups()}
    assert set(groups) == {"new", "layernorm"}
    assert len([p for g in groups.values() for p in g["params"]]) == len(got)


@pytest.mark.parametrize("switch,gone", [("vision_to_text", "b_t."), ("text_to_vision", "b_v."),
                                         ("layerwise", "b_vt."), ("lambda_cjs", "head.")])
def test_each_mapping_block_and_the_jigsaw_can_be_switched_off(switch, gone, tokenizer):
    m = make(tokenizer=tokenizer, **{switch: 0 if switch == "lambda_cjs" else False})
    assert not [n for n in names(m) if n.startswith(gone)]
    loss, logs = m.train()(batch())
    assert math.isfinite(loss.item())
    assert ("cjs" in logs) == (switch != "lambda_cjs")


@pytest.mark.parametrize("setting", ["zs", "fg"])
def test_training_changes_only_trainable_tensors(setting, tokenizer):
    m = make(setting, tokenizer)
    train = set(names(m))
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    opt = torch.optim.AdamW(m.param_groups(), weight_decay=0.0)
    m.train()
    for _ in range(2):
        loss, _ = m(batch(setting))
        opt.zero_grad()
        loss.backward()
        opt.step()
    for n, p in m.named_parameters():
        if n in train:
            assert not torch.equal(before[n], p), f"trainable {n} did not change"
        else:
            assert torch.equal(before[n], p), f"frozen {n} changed"
            assert p.grad is None, n


# ---------------------------------------------------------------------------------------------
# prompts


def test_prompt_layout_per_layer(tokenizer):
    m = make(tokenizer=tokenizer).eval()
    x = images(3)
    with torch.no_grad():
        vp = m.visual_prompts(x, "photo")
        assert len(vp) == 2 and vp[0].shape == (3, 4 + 2, 64)  # 4 static + 2 layer-wise tokens per layer
        assert torch.equal(vp[0][:, :4], vp[1][:, :4])  # the static tokens are the same at every layer
        assert not torch.allclose(vp[0][:, 4:], vp[1][:, 4:])  # the layer-wise ones are not
        t = m.text_layer_features(x, "photo")
        assert t.shape == (3, 2, 64)
    assert make(tokenizer=tokenizer, layerwise=False).visual_prompts(x, "photo")[0].shape == (1, 4, 64)
    assert make(tokenizer=tokenizer, text_to_vision=False).visual_prompts(x, "photo")[0].shape == (3, 2, 64)
    none = make(tokenizer=tokenizer, text_to_vision=False, layerwise=False).eval()
    with torch.no_grad():
        assert none.visual_prompts(x, "photo") is None
        assert torch.allclose(none.encode(x, "photo"), none.clip.encode_image(x), atol=1e-5)


def test_embeddings_depend_on_the_image_alone_and_the_modality(tokenizer):
    m = make(tokenizer=tokenizer).eval()
    x = images(4)
    with torch.no_grad():
        full = m.encode_sketch(x)
        one = m.encode_sketch(x[2:3])
        assert torch.allclose(full[2:3], one, atol=1e-5)  # per-image prompts: no batch dependence
        assert not torch.allclose(m.encode_sketch(x), m.encode_photo(x), atol=1e-4)  # templates differ
    assert full.shape == (4, 64) and torch.allclose(full.norm(dim=-1), torch.ones(4), atol=1e-5)


def test_template_words_and_the_pooled_class(tokenizer):
    m = make(tokenizer=tokenizer)
    emb = m.clip.token_embedding.weight
    ids = tokenizer(["a sketch of a"])[0]
    assert torch.equal(m.words_sketch, emb[ids[1:5]])
    per_class = []
    for c in CLASSES:
        t = tokenizer([c.replace("_", " ")])[0]
        per_class.append(emb[t[1:int(t.argmax())]].mean(0))
    assert torch.allclose(m.pooled_class, torch.stack(per_class).mean(0), atol=1e-6)
    with pytest.raises(ValueError, match="same number of words"):
        make(tokenizer=tokenizer, sketch_template="a quick sketch of a {}.")


def test_class_text_is_conditioned_on_the_batch_statistic(tokenizer):
    m = make(tokenizer=tokenizer)
    a = m.prompted_class_text("photo", images(4, seed=1))
    b = m.prompted_class_text("photo", images(4, seed=2) * 3)
    assert a.shape == (4, 64) and a.requires_grad
    assert not torch.allclose(a, b)
    plain = make(tokenizer=tokenizer, vision_to_text=False).prompted_class_text("photo", images(4))
    texts = ["a photo of a " + c.replace("_", " ") + "." for c in CLASSES]
    frozen = F.normalize(m.clip.encode_text(tokenizer(texts)), dim=-1)
    assert torch.allclose(plain, frozen, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# losses


def test_adaptive_margin_is_the_class_text_similarity(tokenizer):
    m = make(tokenizer=tokenizer)
    y, yn = torch.tensor([0, 1, 2]), torch.tensor([1, 3, 0])
    t = m.class_text
    cos = (t[y] * t[yn]).sum(-1)
    assert torch.allclose(m.margins(y, yn), cos.clamp_min(0))
    t2 = torch.eye(4)
    t2[1] = -t2[0]  # anti-correlated classes: the margin is clamped at 0
    m.class_text = t2
    assert m.margins(torch.tensor([0, 0]), torch.tensor([1, 2])).tolist() == [0.0, 0.0]
    assert make(tokenizer=tokenizer, adaptive_margin=False).margins(y, yn) == 0.2
    assert make("fg", tokenizer=tokenizer).margins(y, y) == 0.2


def test_loss_is_triplet_plus_alpha_cls_plus_beta_cjs(tokenizer):
    m = make(tokenizer=tokenizer, lambda_cls=0.7, lambda_cjs=0.3).train()
    loss, logs = m(batch())
    assert set(logs) >= {"triplet", "cls", "cjs", "loss"}
    assert loss.item() == pytest.approx(logs["triplet"] + 0.7 * logs["cls"] + 0.3 * logs["cjs"], rel=1e-5)
    _, logs = make(tokenizer=tokenizer, lambda_cls=0).train()(batch())
    assert "cls" not in logs


def test_jigsaw_permutations_are_fixed_and_far_apart():
    p = jigsaw_permutations()
    assert p.shape == (30, 9) and torch.equal(p, jigsaw_permutations())
    assert all(sorted(r) == list(range(9)) for r in p.tolist())
    dmin = min(int((a != b).sum()) for a, b in itertools.combinations(p, 2))
    assert dmin >= 7  # random sets of 30 permutations of 9 tiles typically reach 3-5
    assert not torch.equal(p, jigsaw_permutations(seed=1))
    with pytest.raises(ValueError):
        jigsaw_permutations(grid=4)


def test_shuffle_tiles_and_tile_features():
    x = images(2, 30)
    perm = jigsaw_permutations()[:2]
    assert torch.equal(shuffle_tiles(x, perm), patch_shuffle(x, 3, perm=perm)[0])  # side divisible by 3: exact
    odd = images(2, 32)  # 32 is no multiple of 3: padded to 33, shuffled, cropped back
    out = shuffle_tiles(odd, perm)
    assert out.shape == (2, 3, 32, 32)
    t0 = perm[0, 0].item()  # output tile 0 (rows / cols 0..10) is input tile perm[0]: pixels kept, no blur
    r, c = divmod(t0, 3)
    assert torch.equal(out[0, :, :11, :11], F.pad(odd, (0, 1, 0, 1), mode="replicate")[0, :, 11 * r:11 * r + 11, 11 * c:11 * c + 11])
    tokens = torch.arange(2 * 36 * 1, dtype=torch.float32).view(2, 36, 1)  # a 6 x 6 grid
    f = tile_features(tokens, (6, 6))
    assert f.shape == (2, 9, 1)
    grid = tokens.view(2, 6, 6)
    assert f[0, 4, 0] == grid[0, 2:4, 2:4].mean()  # the centre tile


def test_jigsaw_head_learns_the_permutation_on_fixed_features(tokenizer):
    m = make(tokenizer=tokenizer)
    torch.manual_seed(0)
    fx = torch.randn(64, 9, 64)
    k = torch.randint(30, (64,))
    fs = torch.stack([fx[i, m.perms[k[i]]] for i in range(64)])  # tiles of s' = tiles of x, permuted
    opt = torch.optim.Adam(m.head.parameters(), lr=3e-3)
    for _ in range(150):
        loss = F.cross_entropy(m.head(fx, fs), k)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert (m.head(fx, fs).argmax(-1) == k).float().mean() > 0.9


# ---------------------------------------------------------------------------------------------
# ViT-B/32 (random weights)


def test_vit_b32_shapes_and_counts():
    torch.manual_seed(0)
    clip = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    m = make("zs", open_clip.get_tokenizer("ViT-B-32"), clip=clip, seed=0).eval()
    D, W, L = 768, 512, 12
    expected = (mlp_count(D, D, 4 * W) + mlp_count(W, W, D) + mlp_count(W, W, 2 * D)
                + head_count(D, 64, 9, 30, 2) + 2 * D * (2 * L + 2))
    assert sum(p.numel() for _, p in m.trainable_named_parameters()) == expected
    with torch.no_grad():
        f = m.encode_photo(torch.randn(2, 3, 224, 224))
    assert f.shape == (2, 512)


# ---------------------------------------------------------------------------------------------
# smoke


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


@pytest.mark.parametrize("setting", ["zs", "gzs", "fg"])
def test_ci_training_run(setting, world, tmp_path):
    _, parts = world
    cfg = RunConfig(method="splip", setting=setting, preset="ci", backbone="sbirlab-nano")
    metrics = run_experiment(cfg, tmp_path, progress=False, backbone=nano_backbone())
    assert metrics["train_steps"] == 3 and metrics["setting"] == setting
    if setting == "gzs":
        assert metrics["unseen/num_queries"] == len(parts.test_queries) and metrics["seen/num_queries"] > 0
    key = "Acc@1" if setting == "fg" else "mAP@all"
    assert 0.0 <= metrics[key] <= 1.0
    run = load_run(tmp_path, backbone=nano_backbone())
    assert run.method.setting == ("fg" if setting == "fg" else "zs")
