"""Prompted encoders: parity with open_clip, prompt semantics, gradients, attention maps."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from torch import nn

import open_clip
import sbirlab  # noqa: F401  (registers the tiny configs)
from open_clip.model import _build_vision_tower
from sbirlab.models.prompts import (
    DEFAULT_PLACEHOLDER_ID,
    PromptedTextEncoder,
    PromptedVisionEncoder,
    attention_weights,
    build_prompt_tokens,
)

TINY = ["sbirlab-nano", "sbirlab-micro", "sbirlab-tiny"]
BIG = ["ViT-B-32", "ViT-B-16"]
_MODELS: dict = {}


def get_model(name: str) -> nn.Module:
    """Random-weight open_clip model, built once per test session (ViT-B ones take seconds)."""
    if name not in _MODELS:
        torch.manual_seed(0)
        _MODELS[name] = open_clip.create_model(name, pretrained=None).eval()
    return _MODELS[name]


def image_size(model) -> int:
    size = model.visual.image_size
    return size[0] if isinstance(size, (tuple, list)) else size


def images_for(model, batch: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    s = image_size(model)
    return torch.randn(batch, 3, s, s, generator=g)


@pytest.fixture(scope="module")
def nano():
    return get_model("sbirlab-nano")


@pytest.fixture(scope="module")
def tokenizer():
    return open_clip.get_tokenizer("sbirlab-nano")


def frozen_nano():
    torch.manual_seed(0)
    model = open_clip.create_model("sbirlab-nano", pretrained=None)
    model.requires_grad_(False)
    return model


# ------------------------------------------------------------------------------------------------
# parity with open_clip


@pytest.mark.parametrize("name", TINY + BIG)
def test_parity_image_and_text(name):
    model = get_model(name)
    batch = 1 if name == "ViT-B-16" else 2
    x = images_for(model, batch)
    tok = open_clip.get_tokenizer(name)(["a photo of a dog.", "a sketch of a very small house"][:batch])
    vis, txt = PromptedVisionEncoder(model.visual), PromptedTextEncoder(model)
    with torch.no_grad():
        assert (vis(x) - model.encode_image(x)).abs().max().item() < 1e-6
        assert (txt(tok) - model.encode_text(tok)).abs().max().item() < 1e-6
    # widths are read from the model
    assert vis.width == model.visual.transformer.width
    assert vis.num_layers == len(model.visual.transformer.resblocks)
    assert txt.width == model.transformer.width


@pytest.mark.parametrize("variant", [
    {"final_ln_after_pool": True},
    {"pool_type": "avg"},
    {"no_ln_pre": True},
    {"output_tokens": True},
    {"attentional_pool": True, "attn_pooler_queries": 4, "attn_pooler_heads": 2},
    {"qk_norm": True},  # open_clip's own Attention block (its scaled_cosine_attn path is broken upstream)
    {"ls_init_value": 0.1},
])
def test_parity_vision_tower_variants(variant):
    torch.manual_seed(0)
    cfg = dict(image_size=32, layers=2, width=64, head_width=32, patch_size=8, **variant)
    visual = _build_vision_tower(48, cfg).eval()
    enc = PromptedVisionEncoder(visual)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = visual(x)
        ref = ref[0] if isinstance(ref, tuple) else ref
        assert (enc(x) - ref).abs().max().item() < 1e-6
        # prompts are stripped before pooling: attention-pooled / avg-pooled towers still work
        out = enc(x, prompts=torch.randn(3, 64), return_attn=True)
    assert out.embeds.shape == ref.shape
    assert out.attentions[0].shape == (2, 2, 1 + 16 + 3, 1 + 16 + 3)
    torch.testing.assert_close(out.attentions[1].sum(-1), torch.ones(2, 2, 20))


def test_unsupported_towers_raise():
    resnet = _build_vision_tower(32, dict(image_size=32, layers=(1, 1, 1, 1), width=16, head_width=16))
    with pytest.raises(NotImplementedError, match="VisionTransformer"):
        PromptedVisionEncoder(resnet)
    with pytest.raises(NotImplementedError):
        PromptedTextEncoder(nn.Linear(2, 2))


# ------------------------------------------------------------------------------------------------
# visual prompts


def test_shallow_prompts_match_reference_sequence(nano):
    """Shallow prompts = open_clip's own transformer on [CLS, patches, prompts] after ln_pre."""
    v = nano.visual
    enc = PromptedVisionEncoder(v)
    x = images_for(nano)
    p = torch.randn(3, enc.width)
    with torch.no_grad():
        tokens = enc.embed(x)  # [B, 1+N, D]
        n = tokens.shape[1]
        seq = v.ln_pre(torch.cat([tokens, p.expand(2, -1, -1)], dim=1))
        pooled, _ = v._pool(v.transformer(seq)[:, :n])
        ref = pooled @ v.proj
        out = enc(x, prompts=p)
        plain = enc(x)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    assert not torch.allclose(out, plain)


def test_per_sample_prompts_equal_separate_calls(nano):
    enc = PromptedVisionEncoder(nano.visual)
    x = images_for(nano, 3)
    p = torch.randn(3, 4, enc.width)
    deep = torch.randn(3, enc.num_layers, 4, enc.width)
    with torch.no_grad():
        shallow = enc(x, prompts=p)
        deep_out = enc(x, deep_prompts=deep)
        for i in range(3):
            torch.testing.assert_close(shallow[i:i + 1], enc(x[i:i + 1], prompts=p[i]), atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(deep_out[i:i + 1], enc(x[i:i + 1], deep_prompts=deep[i]),
                                       atol=1e-5, rtol=1e-5)


def test_deep_prompt_forms_agree_and_replace(nano):
    enc = PromptedVisionEncoder(nano.visual)
    x = images_for(nano)
    L, K, D = enc.num_layers, 3, enc.width
    deep = torch.randn(L, K, D)
    with torch.no_grad():
        a = enc(x, deep_prompts=deep, return_tokens=True)
        b = enc(x, deep_prompts=list(deep))
        c = enc(x, deep_prompts=lambda layer, img_tokens: deep[layer])
        d = enc(x, deep_prompts=deep.unsqueeze(0).expand(2, -1, -1, -1))
    for other in (b, c, d):
        torch.testing.assert_close(a.embeds, other, rtol=0, atol=0)
    n = a.num_image_tokens
    assert n == 1 + 16
    assert len(a.hidden_states) == L + 1
    for layer in range(L):  # the block input holds exactly the layer's prompts
        h = a.hidden_states[layer]
        assert h.shape == (2, n + K, D)
        torch.testing.assert_close(h[:, n:], deep[layer].expand(2, -1, -1), rtol=0, atol=0)
    assert a.prompt_tokens.shape == (2, K, D)


def test_deep_prompts_first_layers_then_flow_on():
    """MaPLe form: shallow prompts through ln_pre, deep ones for layers 1..J-1, then the prompts flow on."""
    torch.manual_seed(0)
    model = open_clip.create_model("sbirlab-micro", pretrained=None).eval()  # 4 layers
    enc = PromptedVisionEncoder(model.visual)
    x = images_for(model)
    p0, p1 = torch.randn(2, enc.width), torch.randn(2, enc.width)
    seen = []

    def hook(layer, tokens):
        seen.append(layer)
        return None

    with torch.no_grad():
        out = enc(x, prompts=p0, deep_prompts=[None, p1], return_tokens=True, layer_hook=hook)
    assert seen == [0, 1, 2, 3]
    n = out.num_image_tokens
    torch.testing.assert_close(out.hidden_states[0][:, n:], model.visual.ln_pre(p0).expand(2, -1, -1))
    torch.testing.assert_close(out.hidden_states[1][:, n:], p1.expand(2, -1, -1), rtol=0, atol=0)
    assert not torch.allclose(out.hidden_states[2][:, n:], p1.expand(2, -1, -1))  # block 1 processed them
    with pytest.raises(ValueError, match="deep prompts for 5 layers"):
        enc(x, deep_prompts=torch.randn(5, 2, enc.width))
    with pytest.raises(ValueError, match="prompts must have shape"):
        enc(x, prompts=torch.randn(2, enc.width + 1))


def test_layer_hook_can_replace_tokens(nano):
    enc = PromptedVisionEncoder(nano.visual)
    x = images_for(nano)
    with torch.no_grad():
        same = enc(x, layer_hook=lambda layer, t: None)
        zeroed = enc(x, layer_hook=lambda layer, t: torch.zeros_like(t) if layer == enc.num_layers - 1 else None)
        ref = nano.encode_image(x)
    torch.testing.assert_close(same, ref, rtol=0, atol=0)
    assert not torch.allclose(zeroed, ref)


def test_prompts_survive_patch_dropout():
    torch.manual_seed(0)
    visual = _build_vision_tower(32, dict(image_size=32, layers=2, width=64, head_width=32, patch_size=8,
                                          patch_dropout=0.5)).train()
    enc = PromptedVisionEncoder(visual)
    out = enc(torch.randn(2, 3, 32, 32), prompts=torch.randn(3, 64), return_tokens=True)
    assert out.num_image_tokens == 1 + 8  # half the 16 patches kept, CLS always
    assert out.prompt_tokens.shape == (2, 3, 64)
    with pytest.raises(ValueError, match="patch_dropout"):
        out.patch_grid(-2)


def test_tokens_grid_and_final_state(nano):
    enc = PromptedVisionEncoder(nano.visual)
    x = images_for(nano)
    with torch.no_grad():
        out = enc(x, prompts=torch.randn(2, enc.width), return_tokens=[-2, -1])
        assert out.hidden_states[0] is None and out.hidden_states[-2] is not None
        grid = out.patch_grid(-2)
        assert grid.shape == (2, 4, 4, enc.width)
        torch.testing.assert_close(grid.reshape(2, 16, -1), out.hidden_states[-2][:, 1:17], rtol=0, atol=0)
        final = out.hidden_states[-1]
        torch.testing.assert_close(nano.visual.ln_post(final[:, 0]) @ nano.visual.proj, out.embeds)
    assert out.patch_tokens.shape == (2, 16, enc.width)
    assert out.attentions is None


# ------------------------------------------------------------------------------------------------
# attention maps


def _manual_mha_weights(block, x):
    attn = block.attn
    h = block.ln_1(x)
    B, T, D = h.shape
    H = attn.num_heads
    q, k, _ = nn.functional.linear(h, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    q = q.reshape(B, T, H, -1).transpose(1, 2)
    k = k.reshape(B, T, H, -1).transpose(1, 2)
    return ((q @ k.transpose(-1, -2)) / (D // H) ** 0.5).softmax(-1)


def test_attention_maps_include_prompts_and_rows_sum_to_one(nano):
    enc = PromptedVisionEncoder(nano.visual)
    x = images_for(nano)
    K = 3
    with torch.no_grad():
        out = enc(x, prompts=torch.randn(K, enc.width), return_attn=True, return_tokens=True)
        plain = enc(x)
    T = 1 + 16 + K
    assert len(out.attentions) == enc.num_layers
    for layer, a in enumerate(out.attentions):
        assert a.shape == (2, enc.num_heads, T, T)
        torch.testing.assert_close(a.sum(-1), torch.ones(2, enc.num_heads, T))
        ref = _manual_mha_weights(nano.visual.transformer.resblocks[layer], out.hidden_states[layer])
        torch.testing.assert_close(a, ref, atol=1e-5, rtol=1e-4)
    # asking for attention does not change the embedding path
    with torch.no_grad():
        torch.testing.assert_close(enc(x, return_attn=[0]).embeds, plain, rtol=0, atol=0)


def test_text_attention_is_causal(nano, tokenizer):
    enc = PromptedTextEncoder(nano)
    tok = tokenizer(["a photo of a cat."])
    with torch.no_grad():
        out = enc(tok, return_attn=True)
    a = out.attentions[-1]
    T = tok.shape[1]
    assert a.shape == (1, nano.transformer.resblocks[0].attn.num_heads, T, T)
    torch.testing.assert_close(a.sum(-1), torch.ones(a.shape[:-1]))
    assert a.triu(1).abs().max().item() == 0.0


def test_attention_weights_custom_block():
    torch.manual_seed(0)
    visual = _build_vision_tower(32, dict(image_size=32, layers=1, width=64, head_width=32, patch_size=8,
                                          qk_norm=True))
    block = visual.transformer.resblocks[0]
    x = torch.randn(2, 5, 64)
    w = attention_weights(block, x)
    # the block's own output equals attention(w) pushed through its projection
    attn = block.attn
    h = block.ln_1(x)
    v = nn.functional.linear(h, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)[2]
    v = v.reshape(2, 5, attn.num_heads, -1).transpose(1, 2)
    ctx = (w @ v).transpose(1, 2).reshape(2, 5, 64)
    torch.testing.assert_close(attn.out_proj(ctx), attn(h), atol=1e-5, rtol=1e-4)


# ------------------------------------------------------------------------------------------------
# text prompts


def test_build_prompt_tokens(tokenizer):
    tok = build_prompt_tokens(tokenizer, ["cat", "hot_air_balloon"], n_ctx=4)
    assert tok.shape == (2, 32)
    assert (tok[:, 1:5] == DEFAULT_PLACEHOLDER_ID).all()
    torch.testing.assert_close(tok[1], tokenizer(["X X X X a photo of a hot air balloon."])[0])
    plain = build_prompt_tokens(tokenizer, ["cat"], n_ctx=0, template="a sketch of a {}.")
    torch.testing.assert_close(plain, tokenizer(["a sketch of a cat."]))
    with pytest.raises(ValueError, match="context length"):
        build_prompt_tokens(tokenizer, ["cat"], n_ctx=30)
    with pytest.raises(ValueError, match="single token"):
        build_prompt_tokens(tokenizer, ["cat"], n_ctx=2, placeholder="placeholderword")


def test_coop_ctx_equal_to_placeholder_embedding_is_identity(nano, tokenizer):
    enc = PromptedTextEncoder(nano)
    tok = build_prompt_tokens(tokenizer, ["cat", "dog", "house"], n_ctx=4)
    x_emb = nano.token_embedding.weight[DEFAULT_PLACEHOLDER_ID].detach()
    with torch.no_grad():
        ref = nano.encode_text(tok)
        same = enc(tok, ctx=x_emb.expand(4, -1))
        deep_same = enc(tok, ctx=x_emb.expand(4, -1), deep_ctx=lambda layer, h: h[:, 1:5])
        other = enc(tok, ctx=torch.randn(4, enc.width))
    torch.testing.assert_close(same, ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(deep_same, ref, rtol=0, atol=1e-6)
    assert not torch.allclose(other, ref)


def test_per_sample_ctx_and_placeholder_check(nano, tokenizer):
    enc = PromptedTextEncoder(nano)
    tok = build_prompt_tokens(tokenizer, ["cat", "dog"], n_ctx=2)
    ctx = torch.randn(2, 2, enc.width)
    deep = torch.randn(2, enc.num_layers, 2, enc.width)
    with torch.no_grad():
        both = enc(tok, ctx=ctx, deep_ctx=deep)
        for i in range(2):
            torch.testing.assert_close(both[i:i + 1], enc(tok[i:i + 1], ctx=ctx[i], deep_ctx=deep[i]),
                                       atol=1e-5, rtol=1e-5)
        with pytest.raises(ValueError, match="placeholder"):
            enc(tokenizer(["a photo of a cat."]), ctx=torch.randn(2, enc.width))
        PromptedTextEncoder(nano, placeholder_id=None)(tokenizer(["a photo of a cat."]),
                                                       ctx=torch.randn(2, enc.width))


def test_text_hidden_states(nano, tokenizer):
    enc = PromptedTextEncoder(nano)
    tok = build_prompt_tokens(tokenizer, ["cat"], n_ctx=2)
    deep = torch.randn(enc.num_layers, 2, enc.width)
    with torch.no_grad():
        out = enc(tok, ctx=torch.randn(2, enc.width), deep_ctx=deep, return_tokens=True)
    for layer in range(enc.num_layers):
        torch.testing.assert_close(out.hidden_states[layer][:, 1:3], deep[layer][None], rtol=0, atol=0)
    eot = tok.argmax(-1)
    torch.testing.assert_close(out.tokens[0, eot[0]] @ nano.text_projection, out.embeds[0])


# ------------------------------------------------------------------------------------------------
# gradients reach only the prompts


def _assert_only(params, model):
    for p in params:
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert all(q.grad is None for q in model.parameters())


def test_frozen_backbone_shallow_and_deep_visual_gradients():
    model = frozen_nano()
    enc = PromptedVisionEncoder(model.visual)
    x = images_for(model)
    shallow = nn.Parameter(0.02 * torch.randn(3, enc.width))
    deep = nn.Parameter(0.02 * torch.randn(enc.num_layers - 1, 3, enc.width))
    enc(x, prompts=shallow, deep_prompts=[None, *deep]).pow(2).sum().backward()
    _assert_only([shallow, deep], model)


def test_frozen_backbone_coop_and_text_deep_gradients(tokenizer):
    model = frozen_nano()
    enc = PromptedTextEncoder(model)
    tok = build_prompt_tokens(tokenizer, ["cat", "dog"], n_ctx=4)
    ctx = nn.Parameter(0.02 * torch.randn(4, enc.width))
    deep = nn.Parameter(0.02 * torch.randn(enc.num_layers - 1, 4, enc.width))
    enc(tok, ctx=ctx, deep_ctx=[None, *deep]).pow(2).sum().backward()
    _assert_only([ctx, deep], model)


def test_maple_style_coupling_gradients(tokenizer):
    """Text prompts per layer, each projected to a visual prompt by a linear coupling (MaPLe)."""
    model = frozen_nano()
    venc, tenc = PromptedVisionEncoder(model.visual), PromptedTextEncoder(model)
    J = tenc.num_layers
    text_prompts = nn.Parameter(0.02 * torch.randn(J, 2, tenc.width))
    couple = nn.Linear(tenc.width, venc.width)
    tok = build_prompt_tokens(tokenizer, ["cat", "dog"], n_ctx=2)
    t = tenc(tok, ctx=text_prompts[0], deep_ctx=[None, *text_prompts[1:]])
    v = venc(images_for(model), prompts=couple(text_prompts[0]),
             deep_prompts=lambda layer, _: couple(text_prompts[layer]) if 0 < layer < J else None)
    (v @ t.T).sum().backward()
    _assert_only([text_prompts, couple.weight], model)


def test_grad_checkpointing_matches():
    model = frozen_nano()
    enc = PromptedVisionEncoder(model.visual)
    x = images_for(model)
    grads = []
    for ckpt in (False, True):
        model.visual.set_grad_checkpointing(ckpt)
        p = nn.Parameter(torch.ones(2, enc.width) * 0.1)
        enc(x, prompts=p, deep_prompts=torch.ones(enc.num_layers, 2, enc.width) * p.sum()).sum().backward()
        grads.append(p.grad)
    model.visual.set_grad_checkpointing(False)
    torch.testing.assert_close(grads[0], grads[1])
