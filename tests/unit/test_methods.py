"""Every registered method: what trains (by name), what stays bit-identical, shapes, state round-trips.

Methods are built on random-weight ``sbirlab-nano`` CLIPs (32 px); the real ``ViT-B-32`` architecture
(random weights, never trained here) checks that shapes and trainable counts follow the backbone.
"""
from __future__ import annotations

import itertools
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import logging
import math
import re

import open_clip
import pytest
import torch

import sbirlab  # noqa: F401  (registers the tiny configs)
from sbirlab.models.methods.base import layernorm_parameters
from sbirlab.models.registry import METHODS, build_method

NAMES = ["frozen", "b-ft", "b-lin", "b-cond", "b-ip", "b-mm", "b-deep", "clip-at"]
SETTINGS = ["zs", "fg"]
CLASSES = ["cat", "dog", "hot_air_balloon", "tree"]
METHOD_LOGGER = "sbirlab.models.methods.base"

LN = r"clip\.visual\.(ln_pre|ln_post|transformer\.resblocks\.\d+\.ln_[12])\.(weight|bias)"
#: name patterns of the trainable tensors, per method and setting (each must match at least one)
EXPECTED = {
    "frozen": {"zs": [], "fg": []},
    "b-ft": {s: [r"clip\.visual\..+"] for s in SETTINGS},
    "b-lin": {s: [r"head\.weight", r"head\.bias"] for s in SETTINGS},
    "b-cond": {s: [r"prompts", r"meta\.\d+\.(weight|bias)"] for s in SETTINGS},
    "b-ip": {s: [r"sketch_prompts", r"photo_prompts"] for s in SETTINGS},
    "b-mm": {s: [r"ctx", r"couple\.\d+\.(weight|bias)"] for s in SETTINGS},
    "b-deep": {s: [r"prompts"] for s in SETTINGS},
    "clip-at": {"zs": [r"sketch_prompts", r"photo_prompts", LN], "fg": [r"prompts", LN]},
}


#: methods with their own test modules (tests/unit/test_dp_clip.py, tests/unit/test_splip.py)
OWN_TESTS = ["dp-clip", "splip"]


def test_the_registry_holds_exactly_these_methods():
    assert sorted(METHODS) == sorted(NAMES + OWN_TESTS)


# ---------------------------------------------------------------------------------------------
# builders


@pytest.fixture(scope="module")
def tokenizer():
    return open_clip.get_tokenizer("sbirlab-nano")


def nano_clip(seed: int = 0):
    torch.manual_seed(seed)
    return open_clip.create_model("sbirlab-nano", pretrained=None)


def make(name, setting="zs", tokenizer=None, clip=None, seed=1, **cfg):
    clip = clip if clip is not None else nano_clip()
    torch.manual_seed(seed)  # the method's own initialisation
    return build_method(name, clip, setting, classnames=CLASSES, tokenizer=tokenizer, **cfg)


def images(n=4, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g)


def hand_batch(n_per_class=2, n_classes=2, size=32):
    """A triplet batch: classes 0..n_classes-1, ``n_per_class`` each (class-balanced, as the f-divergence needs)."""
    n = n_per_class * n_classes
    labels = torch.arange(n_classes).repeat_interleave(n_per_class)
    return {"sketch": images(n, size, 1), "photo": images(n, size, 2), "photo_neg": images(n, size, 3),
            "label": labels, "label_neg": (labels + 1) % len(CLASSES), "index": torch.arange(n)}


def trainable_names(m):
    return [n for n, _ in m.trainable_named_parameters()]


def snapshot(m):
    """Every parameter (deduplicated) and buffer, cloned."""
    out = {f"param:{n}": p.detach().clone() for n, p in m.named_parameters()}
    out.update({f"buffer:{n}": b.detach().clone() for n, b in m.named_buffers()})
    return out


# ---------------------------------------------------------------------------------------------
# what trains


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("name", NAMES)
def test_trainable_parameters_by_name_and_logged_count(name, setting, tokenizer, caplog):
    caplog.set_level(logging.INFO, logger=METHOD_LOGGER)
    m = make(name, setting, tokenizer)
    names = trainable_names(m)
    patterns = EXPECTED[name][setting]
    stray = [n for n in names if not any(re.fullmatch(p, n) for p in patterns)]
    assert not stray, f"{name}/{setting}: unexpected trainable tensors {stray}"
    for p in patterns:
        assert any(re.fullmatch(p, n) for n in names), f"{name}/{setting}: nothing trainable matches {p!r}"
    # exactly the advertised parts of the backbone, nothing more, nothing less
    visual = {f"clip.visual.{n}" for n, _ in m.clip.visual.named_parameters()}
    if name == "b-ft":
        assert set(names) == visual
    elif name == "clip-at":
        lns = {f"clip.visual.{n}" for n, _ in layernorm_parameters(m.clip.visual)}
        n_layers = len(m.clip.visual.transformer.resblocks)
        assert len(lns) == 2 * (2 + 2 * n_layers)  # ln_pre, ln_post, ln_1 and ln_2 of every block
        assert {n for n in names if n.startswith("clip.")} == lns
    else:
        assert not [n for n in names if n.startswith("clip.")]
    assert all(not p.requires_grad for n, p in m.clip.named_parameters() if f"clip.{n}" not in set(names))
    # the count is logged
    n_train = sum(p.numel() for _, p in m.trainable_named_parameters())
    msgs = [r.getMessage() for r in caplog.records if r.name == METHOD_LOGGER]
    assert any(f"{name} ({setting}): {n_train} trainable parameters" in msg for msg in msgs), msgs
    # the optimiser sees exactly the trainable tensors, once each
    group_params = [p for g in m.param_groups() for p in g["params"]]
    assert len(group_params) == len({id(p) for p in group_params}) == len(names)
    assert {id(p) for p in group_params} == {id(p) for _, p in m.trainable_named_parameters()}


def test_prompt_shapes_follow_the_config_and_backbone(tokenizer):
    clip = nano_clip()
    d, e, n_layers = clip.visual.transformer.width, clip.visual.output_dim, len(clip.visual.transformer.resblocks)
    assert make("b-ip", tokenizer=tokenizer, n_prompts=5).sketch_prompts.shape == (5, d)
    assert make("b-cond", tokenizer=tokenizer).prompts.shape == (3, d)
    assert make("b-deep", tokenizer=tokenizer, n_prompts=2).prompts.shape == (n_layers, 2, d)  # [L, K, D]
    assert make("b-lin", tokenizer=tokenizer).head.weight.shape == (e, e)
    mm = make("b-mm", tokenizer=tokenizer, n_prompts=2, depth=1)
    assert mm.ctx.shape == (1, 2, clip.transformer.width) and len(mm.couple) == 1
    at = make("clip-at", "fg", tokenizer=tokenizer)
    assert at.prompts.shape == (3, d) and not hasattr(at, "sketch_prompts")


# ---------------------------------------------------------------------------------------------
# one optimiser step: frozen tensors bit-identical, trainable ones changed


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("name", [n for n in NAMES if n != "frozen"])
def test_one_step_changes_only_trainable_tensors(name, setting, tokenizer):
    m = make(name, setting, tokenizer)
    train_ids = {id(p) for _, p in m.trainable_named_parameters()}
    train_names = {f"param:{n}" for n, p in m.named_parameters() if id(p) in train_ids}
    before = snapshot(m)
    opt = torch.optim.AdamW(m.param_groups(), weight_decay=0.0)
    m.train()
    loss, logs = m(hand_batch())
    assert loss.requires_grad and math.isfinite(loss.item()) and loss.item() > 0
    assert "loss" in logs and "triplet" in logs
    opt.zero_grad()
    loss.backward()
    opt.step()
    after = snapshot(m)
    for k, v in before.items():
        if k in train_names:
            assert not torch.equal(v, after[k]), f"{name}/{setting}: trainable {k} did not change"
        else:
            assert torch.equal(v, after[k]), f"{name}/{setting}: frozen {k} changed"
    for n, p in m.named_parameters():
        if id(p) not in train_ids:
            assert p.grad is None, f"frozen {n} received a gradient"
    if name == "b-deep":  # fresh prompts at every layer: each layer's prompts received an update
        for layer in range(m.prompts.shape[0]):
            assert not torch.equal(before["param:prompts"][layer], after["param:prompts"][layer])


def test_frozen_has_nothing_to_train(tokenizer):
    m = make("frozen", tokenizer=tokenizer)
    assert trainable_names(m) == [] and not any(p.requires_grad for p in m.parameters())
    with torch.no_grad():
        loss, logs = m(hand_batch())
    assert set(logs) == {"triplet", "loss"}
    ref = m.clip.encode_image(images(2))
    assert torch.allclose(m.encode(images(2), "sketch"), ref, atol=1e-5)


def test_train_mode_keeps_the_frozen_backbone_in_eval(tokenizer):
    m = make("b-ip", tokenizer=tokenizer).train()
    assert not m.clip.training and not m.clip.visual.training
    ft = make("b-ft", tokenizer=tokenizer).train()
    assert ft.clip.visual.training and not ft.clip.transformer.training
    ft.eval()
    assert not ft.clip.visual.training


# ---------------------------------------------------------------------------------------------
# embeddings


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("name", NAMES)
def test_nano_embedding_shapes(name, setting, tokenizer):
    m = make(name, setting, tokenizer).eval()
    with torch.no_grad():
        for enc in (m.encode_sketch, m.encode_photo):
            f = enc(images(3))
            assert f.shape == (3, m.clip.visual.output_dim) == (3, 64)
            assert torch.allclose(f.norm(dim=-1), torch.ones(3), atol=1e-5)


@pytest.fixture(scope="module")
def vit_b32():
    torch.manual_seed(0)
    clip = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    return clip, open_clip.get_tokenizer("ViT-B-32")


@pytest.mark.parametrize("name", ["clip-at", "b-deep", "b-mm"])
def test_vit_b32_embedding_shapes(name, vit_b32):
    clip, tok = vit_b32
    m = make(name, "zs", tok, clip=clip).eval()
    assert m.width == 768 and m.visual.output_dim == 512
    with torch.no_grad():
        f = m.encode_sketch(torch.randn(2, 3, 224, 224))
    assert f.shape == (2, 512)


def test_vit_b32_trainable_counts(vit_b32):
    """Counts follow the backbone's widths (D = 768, E = 512, text width 512, L = 12)."""
    clip, tok = vit_b32
    D, E, W, L = 768, 512, 512, 12
    n_vis = sum(p.numel() for p in clip.visual.parameters())
    expected = {
        "frozen": 0,
        "b-ft": n_vis,
        "b-lin": E * E + E,
        "b-cond": 3 * D + (E * (E // 4) + E // 4) + (E // 4 * D + D),
        "b-ip": 2 * 3 * D,
        "b-mm": 9 * 2 * W + 9 * (W * D + D),  # J = 9 of 12 layers, K = 2
        "b-deep": L * 4 * D,
        "clip-at": 2 * 3 * D + (2 + 2 * L) * 2 * D,  # two prompts + every LayerNorm (weight and bias)
    }
    for name, n in expected.items():
        m = make(name, "zs", tok, clip=clip)
        assert sum(p.numel() for _, p in m.trainable_named_parameters()) == n, name
    clip.requires_grad_(False)


# ---------------------------------------------------------------------------------------------
# state round-trip and config errors


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("name", NAMES)
def test_trainable_state_dict_round_trip(name, setting, tokenizer):
    a = make(name, setting, tokenizer, seed=1)
    with torch.no_grad():  # move away from any initialisation
        for _, p in a.trainable_named_parameters():
            p.add_(0.01 * torch.randn_like(p))
    sd = a.trainable_state_dict()
    assert set(sd) == set(trainable_names(a))
    assert all(v.device.type == "cpu" and not v.requires_grad for v in sd.values())
    b = make(name, setting, tokenizer, seed=2)
    if sd:
        k0 = next(iter(sd))
        assert not torch.equal(dict(b.named_parameters())[k0], dict(a.named_parameters())[k0])
    b.load_trainable_state_dict(sd)
    own = dict(b.named_parameters())
    for k, v in sd.items():
        assert torch.equal(own[k], v)
    x = images(2)
    a.eval(), b.eval()
    with torch.no_grad():
        assert torch.equal(a.encode_sketch(x), b.encode_sketch(x))
        assert torch.equal(a.encode_photo(x), b.encode_photo(x))
    if sd:  # the state dict is a copy, not a view of the live tensors
        k0 = next(iter(sd))
        sd[k0].add_(1.0)
        assert not torch.equal(dict(a.named_parameters())[k0], sd[k0])


def test_load_trainable_state_dict_rejects_mismatches(tokenizer):
    m = make("b-ip", tokenizer=tokenizer)
    sd = m.trainable_state_dict()
    with pytest.raises(KeyError, match="missing"):
        m.load_trainable_state_dict({"sketch_prompts": sd["sketch_prompts"]})
    with pytest.raises(KeyError, match="unknown"):
        m.load_trainable_state_dict({**sd, "not_a_tensor": torch.zeros(1)})


@pytest.mark.parametrize("name", NAMES)
def test_unknown_config_keys_raise(name, tokenizer):
    with pytest.raises(TypeError, match="n_promts"):
        make(name, tokenizer=tokenizer, n_promts=3)


def test_unknown_method_and_setting_raise(tokenizer):
    with pytest.raises(KeyError, match="registered"):
        make("b-nope", tokenizer=tokenizer)
    with pytest.raises(ValueError, match="settings"):
        make("b-ip", "gfs", tokenizer=tokenizer)


# ---------------------------------------------------------------------------------------------
# CLIP-AT specifics


def test_clip_at_ablation_tune_ln_false_trains_prompts_only(tokenizer):
    for setting, prompts in (("zs", {"sketch_prompts", "photo_prompts"}), ("fg", {"prompts"})):
        m = make("clip-at", setting, tokenizer, tune_ln=False)
        assert set(trainable_names(m)) == prompts
        assert [g["name"] for g in m.param_groups()] == ["prompts"]


def test_clip_at_param_groups_have_their_own_learning_rates(tokenizer):
    m = make("clip-at", "zs", tokenizer, lr=1e-3, lr_ln=1e-5)
    groups = {g["name"]: g for g in m.param_groups()}
    assert set(groups) == {"prompts", "layernorm"}
    assert groups["prompts"]["lr"] == 1e-3 and groups["layernorm"]["lr"] == 1e-5
    assert {id(p) for p in groups["layernorm"]["params"]} == {id(p) for _, p in layernorm_parameters(m.clip.visual)}


@pytest.mark.parametrize("setting,switch,key", [
    ("zs", "lambda_cls", "cls"), ("fg", "lambda_cls", "cls"), ("fg", "lambda_ps", "ps"), ("fg", "lambda_fdiv", "fdiv")])
def test_clip_at_ablation_switches_drop_loss_terms(setting, switch, key, tokenizer):
    batch = hand_batch()
    torch.manual_seed(0)
    _, full = make("clip-at", setting, tokenizer)(batch)
    torch.manual_seed(0)
    _, ablated = make("clip-at", setting, tokenizer, **{switch: 0.0})(batch)
    assert key in full and key not in ablated
    assert set(full) - set(ablated) == {key}


def test_clip_at_loss_terms_and_total(tokenizer):
    batch = hand_batch()
    _, zs = make("clip-at", "zs", tokenizer)(batch)
    assert set(zs) == {"triplet", "cls", "loss"}  # no FG terms at category level
    assert zs["loss"] == pytest.approx(zs["triplet"] + 0.5 * zs["cls"], rel=1e-5)
    _, fg = make("clip-at", "fg", tokenizer, lambda_ps=0.7, lambda_fdiv=2.0)(batch)
    assert set(fg) == {"triplet", "cls", "ps", "fdiv", "loss"}
    assert fg["loss"] == pytest.approx(fg["triplet"] + 0.5 * fg["cls"] + 0.7 * fg["ps"] + 2.0 * fg["fdiv"], rel=1e-5)


def test_clip_at_fg_shares_one_prompt_zs_has_two(tokenizer):
    x = images(3)
    fg = make("clip-at", "fg", tokenizer).eval()
    zs = make("clip-at", "zs", tokenizer).eval()
    with torch.no_grad():
        assert torch.equal(fg.encode_sketch(x), fg.encode_photo(x))
        assert not torch.allclose(zs.encode_sketch(x), zs.encode_photo(x))
    assert zs.sketch_prompts is not zs.photo_prompts
    assert not torch.equal(zs.sketch_prompts, zs.photo_prompts)


def test_b_ip_prompts_are_independent_per_modality(tokenizer):
    m = make("b-ip", tokenizer=tokenizer).eval()
    x = images(2)
    with torch.no_grad():
        s0, p0 = m.encode_sketch(x), m.encode_photo(x)
        m.sketch_prompts.add_(1.0)
        assert not torch.equal(m.encode_sketch(x), s0)
        assert torch.equal(m.encode_photo(x), p0)


# ---------------------------------------------------------------------------------------------
# negatives: the sampled one ("random", the papers) or the hardest valid one in the batch


def _neg_case():
    # 3 sketches; photos: p (positives) then n (sampled negatives), 2-d embeddings on the unit circle
    ang = lambda d: torch.tensor([math.cos(math.radians(d)), math.sin(math.radians(d))])  # noqa: E731
    s = torch.stack([ang(0), ang(90), ang(180)])
    p = torch.stack([ang(5), ang(95), ang(185)])
    n = torch.stack([ang(120), ang(10), ang(300)])
    batch = {"label": torch.tensor([0, 1, 0]), "label_neg": torch.tensor([1, 0, 1]),
             "photo_index": torch.tensor([10, 11, 12]), "photo_neg_index": torch.tensor([13, 14, 15])}
    return s, p, n, batch


def test_random_negatives_are_the_sampled_ones(tokenizer):
    m = make("b-deep", "zs", tokenizer)
    s, p, n, batch = _neg_case()
    assert torch.equal(m.negatives(s, p, n, batch), n)


def test_batch_hard_negatives_zs_pick_the_closest_photo_of_another_class(tokenizer):
    m = make("b-deep", "zs", tokenizer, negatives="batch-hard")
    s, p, n, batch = _neg_case()
    got = m.negatives(s, p, n, batch)
    # candidates: p0(5,c0) p1(95,c1) p2(185,c0) n0(120,c1) n1(10,c0) n2(300,c1)
    # sketch 0 (class 0, at 0 deg): other-class photos p1 (95), n0 (120), n2 (300 = -60) -> n2
    # sketch 1 (class 1, at 90 deg): class-0 photos p0 (5), p2 (185), n1 (10) -> n1 (80 deg away)
    # sketch 2 (class 0, at 180 deg): p1 (95), n0 (120), n2 (300) -> n0 (60 deg away)
    assert torch.allclose(got, torch.stack([n[2], n[1], n[0]]))


def test_batch_hard_negatives_fg_pick_another_instance_of_the_same_class(tokenizer):
    m = make("b-deep", "fg", tokenizer, negatives="batch-hard")
    s, p, n, batch = _neg_case()
    batch = {**batch, "label_neg": batch["label"].clone()}  # FG: negatives share the class
    got = m.negatives(s, p, n, batch)
    # sketch 0 (class 0, pair 10): class-0 photos except index 10: p2 (185), n0 (120), n2 (300) -> n2
    # sketch 1 (class 1, pair 11): only n1 (10 deg) is class 1 and not its pair -> n1
    # sketch 2 (class 0, pair 12): p0 (5), n0 (120), n2 (300) -> n0 (60 deg)
    assert torch.allclose(got, torch.stack([n[2], n[1], n[0]]))


# DP-CLIP and SpLIP mine their own negatives (the papers' curricula, see their tests)
@pytest.mark.parametrize("name", [n for n in NAMES if n not in ("frozen", "dp-clip", "splip")])
def test_every_triplet_method_takes_its_negatives_from_cfg(name, tokenizer, monkeypatch):
    """``cfg.negatives`` reaches the loss of every method that trains on triplets (issue 12, bug 3:
    B-MM used the sampled negative whatever the setting)."""
    m = make(name, "zs", tokenizer, negatives="batch-hard")
    calls = []
    real = type(m).negatives

    def spy(self, s, p, n, batch):
        out = real(self, s, p, n, batch)
        calls.append(out)
        return out

    monkeypatch.setattr(type(m), "negatives", spy)
    m.train()
    m(hand_batch())
    assert len(calls) == 1, f"{name}: loss did not call negatives()"


def test_batch_hard_keeps_the_sampled_negative_without_a_valid_one_and_rejects_unknown_modes(tokenizer):
    m = make("b-deep", "zs", tokenizer, negatives="batch-hard")
    s, p, n, batch = _neg_case()
    same = {**batch, "label": torch.zeros(3, dtype=torch.long), "label_neg": torch.zeros(3, dtype=torch.long)}
    assert torch.equal(m.negatives(s, p, n, same), n)
    assert torch.equal(m.negatives(s, p, n, {}), n)  # no label keys (e.g. a custom batch)
    with pytest.raises(ValueError, match="negatives must be"):
        make("b-deep", "zs", tokenizer, negatives="semi").negatives(s, p, n, batch)


# ---------------------------------------------------------------------------------------------
# the paper preset gives each method its paper's learning rates (issue 12, bug 4)


def test_presets_set_each_methods_learning_rates(tokenizer):
    from sbirlab.experiment import PRESETS, RunConfig
    from sbirlab.models.registry import method_names

    assert set(PRESETS["paper"]["method_by_name"]) == set(method_names()) - {"frozen"}
    assert RunConfig(method="clip-at", preset="paper").resolved_method() == {"lr": 1e-4, "lr_ln": 1e-6}
    assert RunConfig(method="dp-clip", preset="paper").resolved_method() == {"lr": 1e-5, "lr_ln": 1e-6}
    assert RunConfig(method="dp-clip", preset="paper", method_cfg={"lr": 3e-5}).resolved_method()["lr"] == 3e-5
    # the cpu preset (the shipped runs): random negatives and the rates chosen on the validation classes
    assert RunConfig(method="clip-at", preset="cpu").resolved_method() == {
        "negatives": "random", "lr": 1e-2, "lr_ln": 1e-3}
    assert RunConfig(method="b-ft", preset="cpu").resolved_method() == {"negatives": "random", "lr": 1e-4}
    assert RunConfig(method="dp-clip", preset="cpu").resolved_method() == {"negatives": "curriculum"}
    for name, preset in itertools.product(method_names(), ("paper", "cpu")):
        opts = RunConfig(method=name, preset=preset).resolved_method()
        opts.pop("negatives", None)
        m = make(name, "zs", tokenizer, **opts)  # every option is one the method knows
        for k, v in opts.items():
            assert getattr(m.cfg, k) == v
        lrs = {g["lr"] for g in m.param_groups()}
        assert not opts or lrs <= {opts["lr"], opts.get("lr_ln", opts["lr"])}, (name, lrs)


# ---------------------------------------------------------------------------------------------
# prompt initialisation (issue 12, bug 5): an option, the default draws exactly as before


@pytest.mark.parametrize("name", ["b-ip", "b-deep", "b-mm", "clip-at"])
def test_prompt_init_options(name, tokenizer):
    default = make(name, "zs", tokenizer)
    torch.manual_seed(1)
    first = next(p for n, p in default.trainable_named_parameters() if "prompt" in n or "ctx" in n)
    torch.manual_seed(1)
    assert torch.equal(first.detach(), torch.randn(*first.shape) * 0.02)  # "normal-0.02": the old draws
    big = make(name, "zs", tokenizer, prompt_init="normal-1")
    xav = make(name, "zs", tokenizer, prompt_init="xavier-uniform")
    pick = lambda m: next(p for n, p in m.trainable_named_parameters() if "prompt" in n or "ctx" in n)  # noqa: E731
    assert 0.5 < pick(big).std().item() < 2.0
    t = pick(xav)
    k = xav.clip.visual.conv1.kernel_size
    bound = (6.0 / t.shape[-1]) ** 0.5 if name == "b-mm" else (6.0 / (3 * k[0] * k[1] + t.shape[-1])) ** 0.5
    assert 0.8 * bound < t.abs().max().item() <= bound  # VPT's uniform(-v, v)
    with pytest.raises(ValueError, match="prompt_init must be one of"):
        make(name, "zs", tokenizer, prompt_init="zeros")
