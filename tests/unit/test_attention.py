"""Attention maps of the prompted ViT (sbirlab.viz.attention): capture, layout, maps, rollout, overlays.

Structure is checked on random-weight ``sbirlab-nano`` CLIPs (32 px, 4 x 4 patches, 2 layers, 2 heads);
what the maps *show* is checked on the shipped tiny CLIP with sketches of the synthetic world.
"""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import matplotlib

matplotlib.use("Agg")

import numpy as np
import open_clip
import pytest
import torch

import sbirlab  # noqa: F401  (registers the tiny configs)
from sbirlab.models.prompts import PromptedVisionEncoder
from sbirlab.models.registry import build_method
from sbirlab.viz import attention as A

CLASSES = ["cat", "dog", "house", "tree"]


def nano_clip(seed: int = 0):
    torch.manual_seed(seed)
    return open_clip.create_model("sbirlab-nano", pretrained=None).eval()


@pytest.fixture(scope="module")
def tokenizer():
    return open_clip.get_tokenizer("sbirlab-nano")


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(1)
    return torch.randn(3, 3, 32, 32)


@pytest.fixture(scope="module")
def enc():
    return PromptedVisionEncoder(nano_clip().visual)


# ------------------------------------------------------------------------------------------ capture

def test_hooks_record_what_return_attn_computes_and_rows_sum_to_one(enc, images):
    torch.manual_seed(0)
    prompts = 0.5 * torch.randn(3, enc.width)
    maps = A.encoder_attention(enc, images, prompts=prompts)
    ref = enc(images, prompts=prompts, return_attn=True).attentions
    assert maps.num_layers == enc.num_layers == 2 and maps.num_heads == enc.num_heads
    assert maps.grid_size == (4, 4) and maps.num_image_tokens == 17 and maps.num_prompts() == 3
    for a, b in zip(maps.attentions, ref):
        assert a.shape == (3, enc.num_heads, 20, 20)
        torch.testing.assert_close(a, b.float(), atol=1e-6, rtol=0)
        torch.testing.assert_close(a.sum(-1), torch.ones(a.shape[:-1]), atol=1e-5, rtol=0)
    assert maps.replaced == [True, False]  # shallow prompts flow on through the blocks


def test_capture_leaves_the_forward_unchanged_and_removes_its_hooks(enc, images):
    blocks = enc.visual.transformer.resblocks
    before = enc(images)
    A.encoder_attention(enc, images, prompts=torch.zeros(2, enc.width))
    assert all(not b._forward_pre_hooks and not b._forward_hooks for b in blocks)
    torch.testing.assert_close(enc(images), before, atol=0, rtol=0)


def test_deep_prompts_are_detected_as_replaced(enc, images):
    torch.manual_seed(0)
    deep = torch.randn(enc.num_layers, 2, enc.width)
    maps = A.encoder_attention(enc, images, prompts=deep[0], deep_prompts=[None, deep[1]])
    assert maps.replaced == [True, True]
    assert maps.num_prompts(0) == maps.num_prompts(1) == 2


def test_per_sample_category_prompts_give_each_image_its_own_maps(enc, images):
    """DP-CLIP-style category prompts are one prompt set per image ([B, K, D] / [B, J, K, D])."""
    torch.manual_seed(0)
    per_sample = torch.randn(3, 2, enc.width)
    batch = A.encoder_attention(enc, images, prompts=per_sample)
    for i in range(3):
        alone = A.encoder_attention(enc, images[i:i + 1], prompts=per_sample[i])
        for a, b in zip(batch.attentions, alone.attentions):
            torch.testing.assert_close(a[i:i + 1], b, atol=1e-5, rtol=0)
    # prompts differ per image, so the same image with another sample's prompts reads differently
    swapped = A.encoder_attention(enc, images[:1], prompts=per_sample[1])
    assert not torch.allclose(swapped.prompt_maps(), batch.prompt_maps()[:1], atol=1e-4)
    deep = torch.randn(3, enc.num_layers, 2, enc.width)  # per-sample deep prompts
    maps = A.encoder_attention(enc, images, deep_prompts=deep)
    assert maps.replaced == [True, True] and maps.prompt_maps(layer=1).shape == (3, 2, 4, 4)


def test_callable_prompts_computed_during_the_forward_are_seen(enc, images):
    seen_layers = []

    def prompts_fn(layer, image_tokens):  # like DP-CLIP: prompts made on the fly from the image tokens
        seen_layers.append(layer)
        return image_tokens[:, :1].repeat(1, 2, 1) * 0.5

    maps = A.encoder_attention(enc, images, deep_prompts=prompts_fn)
    assert seen_layers == [0, 1] and maps.num_prompts(0) == 2 and maps.replaced == [True, True]


@pytest.mark.parametrize("name,setting,k", [("clip-at", "zs", 3), ("b-deep", "zs", 4), ("b-cond", "zs", 3),
                                            ("b-lin", "zs", 0), ("clip-at", "fg", 3)])
def test_any_method_through_its_own_encode(name, setting, k, tokenizer, images):
    m = build_method(name, nano_clip(), setting, classnames=CLASSES, tokenizer=tokenizer)
    for modality in ("sketch", "photo"):
        maps = A.method_attention(m, images, modality)
        assert maps.num_prompts() == k and maps.batch_size == 3
        # the recorded pass is the one that made the embedding: same attention as a recompute
        assert maps.cls_map().shape == (3, 4, 4)
    if name == "b-deep":
        assert maps.replaced == [True, True]
    if name == "b-cond":  # encode runs the tower twice (frozen feature, then prompted): the last pass is kept
        first = A.method_attention(m, images, "photo", pass_index=0)
        assert first.num_prompts() == 0 and maps.num_prompts() == 3


def test_method_sketch_and_photo_prompts_differ_for_clip_at(images, tokenizer):
    m = build_method("clip-at", nano_clip(), "zs", classnames=CLASSES, tokenizer=tokenizer)
    with torch.no_grad():
        m.photo_prompts.mul_(20)
    s, p = A.method_attention(m, images, "sketch"), A.method_attention(m, images, "photo")
    assert not torch.allclose(s.prompt_maps(), p.prompt_maps(), atol=1e-4)


def test_layer_prompts_split_like_b_deep(images, tokenizer):
    m = build_method("b-deep", nano_clip(), "zs", classnames=CLASSES, tokenizer=tokenizer)
    via_method = A.method_attention(m, images, "photo")
    per_sample = m.prompts.detach().unsqueeze(0).expand(3, -1, -1, -1)  # [B, L, K, D], e.g. category prompts
    via_tensor = A.encoder_attention(m.visual, images, *A.split_layer_prompts(per_sample))
    for a, b in zip(via_method.attentions, via_tensor.attentions):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    assert via_tensor.replaced == via_method.replaced == [True, True]
    with pytest.raises(ValueError, match="layer prompts"):
        A.split_layer_prompts(torch.zeros(2, 3))


class _Reimplemented(torch.nn.Module):
    """A method that runs each block's layers itself (as DP-CLIP's text-guided scaling does)."""

    def __init__(self):
        super().__init__()
        self.visual = PromptedVisionEncoder(nano_clip().visual)

    def encode(self, images, modality):
        v = self.visual.visual
        x = v.ln_pre(self.visual.embed(images))
        for blk in v.transformer.resblocks:
            h = blk.ln_1(x)
            x = x + blk.attn(h, h, h, need_weights=False)[0]
            x = x + blk.mlp(blk.ln_2(x))
        return x[:, 0]


def test_a_method_that_bypasses_the_blocks_is_refused_not_misread(images):
    m = _Reimplemented()
    with pytest.raises(RuntimeError, match="without calling the blocks themselves"):
        A.method_attention(m, images, "photo")

    def routed_then_bypassed():  # a plain pass (recorded) followed by a re-implemented one (not recordable)
        m.visual(images)
        m.encode(images, "photo")

    with pytest.raises(RuntimeError, match=r"block\(s\) \[0, 1\]"):
        A.capture_attention(m, routed_then_bypassed)


def test_nothing_recorded_is_a_clear_error(enc):
    with pytest.raises(RuntimeError, match="no attention was recorded"):
        A.capture_attention(enc, lambda: None)
    with pytest.raises(TypeError, match="VisionTransformer"):
        A.capture_attention(torch.nn.Linear(2, 2), lambda: None)


# --------------------------------------------------------------------------------------------- maps

def test_token_maps_read_the_right_rows_and_columns(enc, images):
    maps = A.encoder_attention(enc, images, prompts=torch.randn(3, enc.width))
    a = maps.attentions[-1]
    torch.testing.assert_close(maps.cls_map(), a.mean(1)[:, 0, 1:17].reshape(3, 4, 4))
    torch.testing.assert_close(maps.token_map("prompt:1", head=1), a[:, 1, 18, 1:17].reshape(3, 4, 4))
    torch.testing.assert_close(maps.token_map("prompt:2", direction="to"), a.mean(1)[:, 1:17, 19].reshape(3, 4, 4))
    torch.testing.assert_close(maps.token_map("cls", head="max"), a.amax(1)[:, 0, 1:17].reshape(3, 4, 4))
    pm = maps.prompt_maps(layer=0)
    assert pm.shape == (3, 3, 4, 4) and bool((pm.sum((-2, -1)) <= 1 + 1e-6).all())
    with pytest.raises(IndexError, match="3 prompt tokens"):
        maps.token_map("prompt:3")
    with pytest.raises(IndexError, match="heads"):
        maps.token_map("cls", head=7)
    with pytest.raises(ValueError, match="direction"):
        maps.token_map("cls", direction="sideways")
    no_prompts = A.encoder_attention(enc, images)
    assert no_prompts.prompt_maps().shape == (3, 0, 4, 4)


# ------------------------------------------------------------------------------------------ rollout

def _manual_rollout(maps, residual=0.5):
    """Rollout by hand for shallow prompts (no replacement after layer 0): CLS row over all input tokens."""
    R = None
    for a in maps.attentions:
        a = a.mean(1).double()
        T = a.shape[-1]
        a = (1 - residual) * a + residual * torch.eye(T, dtype=a.dtype)
        a = a / a.sum(-1, keepdim=True)
        R = a if R is None else a @ R
    return R[:, 0]  # [B, T] over [CLS, patches, prompts]


def test_rollout_shape_row_sums_and_a_hand_computation(enc, images):
    maps = A.encoder_attention(enc, images, prompts=torch.randn(3, enc.width))
    m, row = maps.rollout(return_full=True)
    assert m.shape == (3, 4, 4) and row.shape == (3, 17 + 1)
    torch.testing.assert_close(row.sum(-1), torch.ones(3), atol=1e-5, rtol=0)
    ref = _manual_rollout(maps)
    torch.testing.assert_close(row[:, :17], ref[:, :17].float(), atol=1e-5, rtol=0)
    torch.testing.assert_close(row[:, 17], ref[:, 17:].sum(-1).float(), atol=1e-5, rtol=0)  # prompts pooled


def test_rollout_limits(enc, images):
    maps = A.encoder_attention(enc, images)
    _, row = maps.rollout(residual=1.0, return_full=True)  # only the skip connection: CLS is itself
    torch.testing.assert_close(row[:, 0], torch.ones(3))
    one = maps.rollout(residual=0.0, start_layer=1)  # one layer without residual = that layer's CLS row
    torch.testing.assert_close(one, maps.cls_map(layer=1), atol=1e-6, rtol=0)
    first = maps.rollout(residual=0.0, end_layer=-1)  # layers [0, L-1) as in a slice: here layer 0 alone
    torch.testing.assert_close(first, maps.cls_map(layer=0), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="residual"):
        maps.rollout(residual=1.5)
    with pytest.raises(ValueError, match="empty layer range"):
        maps.rollout(start_layer=2)


def test_rollout_resets_replaced_deep_prompts(enc, images):
    """With deep prompts the layer-1 prompts are fresh inputs: attribution through them stops there."""
    torch.manual_seed(0)
    deep = torch.randn(2, 3, enc.width)
    maps = A.encoder_attention(enc, images, prompts=deep[0], deep_prompts=[None, deep[1]])
    _, row = maps.rollout(return_full=True)
    # by hand: layer 0 as usual; before layer 1 the prompt rows become the prompt source
    n = 17
    a0 = maps.attentions[0].mean(1).double()
    a0 = 0.5 * a0 + 0.5 * torch.eye(20, dtype=a0.dtype)
    a0 /= a0.sum(-1, keepdim=True)
    R0 = torch.zeros(3, 20, n + 1, dtype=a0.dtype)
    R0[:, :n, :n] = torch.eye(n)
    R0[:, n:, n] = 1
    R = a0 @ R0
    R[:, n:] = 0
    R[:, n:, n] = 1  # replaced
    a1 = maps.attentions[1].mean(1).double()
    a1 = 0.5 * a1 + 0.5 * torch.eye(20, dtype=a1.dtype)
    a1 /= a1.sum(-1, keepdim=True)
    torch.testing.assert_close(row, (a1 @ R)[:, 0].float(), atol=1e-6, rtol=0)
    # treating them as flowing on instead would give another answer
    maps.replaced = [True, False]
    _, flowing = maps.rollout(return_full=True)
    assert not torch.allclose(flowing, row, atol=1e-4)


# ----------------------------------------------------------------- what the maps show (shipped CLIP)

@pytest.fixture(scope="module")
def tiny_sketches():
    """The shipped tiny CLIP and six synthetic-world sketches of different classes (uint8 + normalised)."""
    from sbirlab.data.synthetic import make_instance, render_sketch
    from sbirlab.models.backbone import load_backbone

    bb = load_backbone("tiny-synthetic")
    ims = [np.asarray(render_sketch(make_instance(c, seed=3), 0, seed=1, size=bb.image_size).convert("RGB"))
           for c in ("cow", "door", "pear", "scissors", "apple", "house")]
    u8 = torch.from_numpy(np.stack(ims)).permute(0, 3, 1, 2).contiguous()  # [B, 3, H, W]
    mean = torch.tensor(bb.mean).view(1, 3, 1, 1)
    std = torch.tensor(bb.std).view(1, 3, 1, 1)
    return bb, u8, (u8.float() / 255 - mean) / std


def test_trained_clip_attends_to_the_ink_and_prompt_maps_are_structured(tiny_sketches):
    bb, u8, x = tiny_sketches
    enc = PromptedVisionEncoder(bb.model.visual)
    torch.manual_seed(0)
    prompts = 0.02 * torch.randn(3, enc.width)  # an untrained CLIP-AT prompt
    maps = A.encoder_attention(enc, x, prompts=prompts, images_u8=u8)
    ink = A.ink_mask(u8, maps.grid_size)
    share = ink.float().mean((-2, -1))
    assert bool(((share > 0.05) & (share < 0.8)).all())  # sketches: some patches hold ink, not all
    cls_on_ink = A.mass_on(maps.cls_map(), ink)
    roll_on_ink = A.mass_on(maps.rollout(), ink)
    # a uniform map would put `share` of its mass on the ink; the pretrained CLS reads from the strokes
    assert float((cls_on_ink - share).mean()) > 0.2
    assert float((roll_on_ink - share).mean()) > 0.05
    # the prompt's map is not uniform noise: it varies over the grid and follows the drawing
    pm = maps.prompt_maps()[:, 0]  # [B, gh, gw]
    cv = pm.std((-2, -1)) / pm.mean((-2, -1))
    assert float(cv.min()) > 0.1
    corr = [np.corrcoef(pm[i].flatten().numpy(), ink[i].flatten().float().numpy())[0, 1] for i in range(len(pm))]
    assert abs(float(np.mean(corr))) > 0.3
    blank = torch.full_like(u8, 255)
    blank_x = (blank.float() / 255 - torch.tensor(bb.mean).view(1, 3, 1, 1)) / torch.tensor(bb.std).view(1, 3, 1, 1)
    on_blank = A.encoder_attention(enc, blank_x, prompts=prompts).prompt_maps()[:, 0]
    assert float((on_blank - pm).abs().mean()) > 0.1 * float(pm.mean())  # the map depends on the image


# ------------------------------------------------------------------------------------ overlays/plots

def test_overlay_shape_dtype_and_where_the_colour_goes():
    img = torch.full((2, 3, 16, 16), 200, dtype=torch.uint8)
    m = torch.zeros(2, 4, 4)
    m[:, 0, 0] = 1.0  # top-left patch
    out = A.overlay(img, m, alpha=0.9, cmap="inferno")
    assert out.shape == (2, 16, 16, 3) and out.dtype == np.uint8
    # the hot corner is coloured (inferno's top is yellow: much more red than blue), the far corner is not
    assert int(out[0, 0, 0, 0]) - int(out[0, 0, 0, 2]) > 60
    assert abs(int(out[0, 15, 15, 0]) - int(out[0, 15, 15, 2])) < 40
    plain = A.overlay(img, m, alpha=0.0)
    assert (plain == 200).all()
    with pytest.raises(ValueError, match="uint8"):
        A.overlay(torch.randn(1, 3, 8, 8), torch.ones(1, 2, 2))
    with pytest.raises(ValueError, match="2 maps for 1 images"):
        A.overlay(img[:1], m)


def test_ink_mask_and_mass_on():
    img = torch.full((1, 3, 16, 16), 255, dtype=torch.uint8)
    img[:, :, 0:4, 12:16] = 0  # ink in the top-right patch of a 4 x 4 grid
    mask = A.ink_mask(img, (4, 4))
    assert mask.sum() == 1 and bool(mask[0, 0, 3])
    m = torch.ones(1, 4, 4)
    assert abs(float(A.mass_on(m, mask)) - 1 / 16) < 1e-6
    ring = torch.full((1, 3, 20, 20), 255, dtype=torch.uint8)  # an outlined square on a 5 x 5 grid
    ring[:, :, 4:16, 4:8] = ring[:, :, 4:16, 12:16] = ring[:, :, 4:8, 4:16] = ring[:, :, 12:16, 4:16] = 0
    outline, filled = A.ink_mask(ring, (5, 5)), A.ink_mask(ring, (5, 5), fill=True)
    assert int(outline.sum()) == 8 and not bool(outline[0, 2, 2])
    assert int(filled.sum()) == 9 and bool(filled[0, 2, 2]) and not bool(filled[0, 0, 0])


def test_figures_have_one_panel_per_map(enc, images):
    u8 = (torch.rand(3, 3, 32, 32) * 255).to(torch.uint8)
    maps = A.encoder_attention(enc, images, prompts=torch.randn(2, enc.width), images_u8=u8)
    cols = {"CLS": maps.cls_map(), "prompt 0": maps.prompt_maps()[:, 0], "rollout": maps.rollout()}
    fig = A.plot_attention_rows(cols, u8, row_titles=["a", "b", "c"])
    assert len(fig.axes) == 3 * 4
    fig = A.plot_sketch_photo(cols, cols, u8, u8, labels=["a", "b", "c"])
    assert len(fig.axes) == 3 * 8
    fig = A.plot_layers_heads(maps, 1, "prompt:1")
    assert len(fig.axes) == maps.num_layers * (maps.num_heads + 1)
    with pytest.raises(ValueError, match="same columns"):
        A.plot_sketch_photo(cols, {"CLS": cols["CLS"]}, u8, u8)
    import matplotlib.pyplot as plt

    plt.close("all")


def test_dp_clip_category_prompts(images, tokenizer):
    """DP-CLIP (category-specific deep prompts): recorded through its own encode when its blocks run as
    open_clip's and, with its text-guided scaling, as the prompted encoder's edited blocks; its cached
    per-category prompts through split_layer_prompts give the same maps."""
    from sbirlab.models.registry import METHODS

    if "dp-clip" not in METHODS:
        pytest.skip("DP-CLIP is not registered in this checkout")
    support = {c: torch.randn(3, 3, 32, 32) for c in ("cat", "dog")}
    labels = ["cat", "dog", "cat"]
    for scaling in ("none", "side"):
        m = build_method("dp-clip", nano_clip(), "zs", classnames=["cat", "dog"], tokenizer=tokenizer,
                         text_scaling=scaling)
        m.set_categories(["cat", "dog"], support)
        m.eval()
        prompts, _ = m.prepared_params()  # [U, L, K, D]: one prompt set per category and layer
        via_tensor = A.encoder_attention(m.visual, images, *A.split_layer_prompts(prompts[torch.tensor([0, 1, 0])]))
        assert via_tensor.num_prompts() == prompts.shape[2] and via_tensor.replaced == [True, True]
        # another "dog" prompt set changes the maps of the dog image only (untrained, DP-CLIP's categories
        # still share their prompts)
        other = prompts.clone()
        other[1] += 0.5 * torch.randn_like(other[1])
        moved = A.encoder_attention(m.visual, images, *A.split_layer_prompts(other[torch.tensor([0, 1, 0])]))
        pm, pm2 = via_tensor.prompt_maps(), moved.prompt_maps()
        torch.testing.assert_close(pm2[[0, 2]], pm[[0, 2]], atol=1e-6, rtol=0)
        assert not torch.allclose(pm2[1], pm[1], atol=1e-4)
        if scaling == "none":
            maps = A.method_attention(m, images, "photo", labels=labels)
            for a, b in zip(maps.attentions, via_tensor.attentions):
                torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
        else:  # the scaled blocks run through the prompted encoder's block edits: recorded, with the edit
            with torch.no_grad():  # make the (zero-initialised) scales act
                for sc in m.scalers:
                    sc.att_b.weight.normal_(0, 0.1)
            P, S = m.prepared_params()
            idx = torch.tensor([0, 1, 0])
            maps = A.method_attention(m, images, "photo", labels=labels)
            direct = A.encoder_attention(m.visual, images, **m.encoder_inputs(P[idx], S[idx]))
            unscaled = A.encoder_attention(m.visual, images, **m.encoder_inputs(P[idx], None))
            assert len(maps.attentions) == len(direct.attentions) == m.visual.num_layers
            for a, b in zip(maps.attentions, direct.attentions):
                torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
            assert not torch.allclose(maps.attentions[-1], unscaled.attentions[-1], atol=1e-4)
