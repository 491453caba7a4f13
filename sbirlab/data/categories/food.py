"""Drawing programs: food."""
from __future__ import annotations

import numpy as np

from ._registry import category


# -- small fast helpers (private; np.linspace / np.isclose are slow, so unit tables are cached) --
from ._fit_kit import _arcp, _ell, _fit, _lin, _rot, _span, _xy


def _leaf_pts(base, angle, length, width, n=9):
    """An almond-shaped leaf from ``base`` pointing along ``angle`` (radians, 0 = right, y down)."""
    u = _lin(n)
    half = width * np.sin(np.pi * u) ** 0.8
    pts = np.concatenate([_xy(u * length, -half), _xy(u[-2:0:-1] * length, half[-2:0:-1])])
    return _rot(pts + base, angle, base)


def _teardrop(cx, cy, r, angle):
    """A small seed or flame: a teardrop with its point along ``angle``."""
    u = _ell(0.0, 0.0, 1.0, 1.0, 9)
    pts = _xy(cx + r * u[:, 0] * (1 + 0.6 * u[:, 0]), cy + r * 0.62 * u[:, 1])
    return _rot(pts, angle, (cx, cy))


def _rounded_rect(x0, y0, x1, y1, r, n=4):
    """A rectangle with rounded corners of radius ``r`` (y down)."""
    r = min(r, (x1 - x0) / 2, (y1 - y0) / 2)
    return np.concatenate([_arcp(x1 - r, y0 + r, r, r, -np.pi / 2, 0.0, n),
                           _arcp(x1 - r, y1 - r, r, r, 0.0, np.pi / 2, n),
                           _arcp(x0 + r, y1 - r, r, r, np.pi / 2, np.pi, n),
                           _arcp(x0 + r, y0 + r, r, r, np.pi, 1.5 * np.pi, n)])


# -- fruit ---------------------------------------------------------------------------------------
_T44 = np.linspace(0, 2 * np.pi, 44, endpoint=False)          # t = 0 at the top, clockwise
_APPLE_TOP = np.exp(-(np.angle(np.exp(1j * _T44)) / 0.42) ** 2)
_APPLE_BOT = np.exp(-(np.angle(np.exp(1j * (_T44 - np.pi))) / 0.25) ** 2)
_APPLE_NARROW = 1 - 0.13 * np.clip(-np.cos(_T44), 0, 1) ** 2


@category("apple", "food")
def apple(b):
    w = b.uniform("width", 0.30, 0.37)          # half-width: apples are wider than tall
    h = b.uniform("height", 0.25, 0.32)         # half-height
    dip = b.uniform("dimple", 0.05, 0.11)       # depth of the stem cavity (two top lobes)
    stem = b.uniform("stem", 0.08, 0.15)
    tilt = b.uniform("stem_tilt", -0.5, 0.5)
    leaf = b.choice("leaf", ["none", "left", "right", "left", "right"])
    col = b.choice("color", ["red", "darkred", "green", "lime", "yellow"])
    cx, cy = 0.5, 0.57
    x = w * np.sin(_T44) * _APPLE_NARROW
    y = -h * np.cos(_T44) + dip * 1.6 * _APPLE_TOP - 0.02 * _APPLE_BOT
    b.poly(_xy(cx + x, cy + y), col, detail=0)
    top = (cx, cy - h + dip * 1.6 - 0.01)
    end = (cx + np.sin(tilt) * stem, top[1] - np.cos(tilt) * stem)
    mid = ((top[0] + end[0]) / 2 + 0.015, (top[1] + end[1]) / 2)
    b.line([top, mid, end], "brown", detail=0, width=0.025)
    if leaf != "none":
        s = 1 if leaf == "right" else -1
        ang = -np.pi / 2 + s * b.uniform("leaf_angle", 0.7, 1.2)
        base = ((mid[0] + end[0]) / 2, (mid[1] + end[1]) / 2)
        b.poly(_leaf_pts(base, ang, 0.16, 0.05), "green", detail=0)
    else:
        b.attr("leaf_angle", 0.0)
    b.line(_arcp(cx, top[1] + 0.01, 0.05, 0.02, 0.2, np.pi - 0.2, 8), "darkred", detail=2, width=0.01)  # cavity
    b.line(_arcp(cx - w * 0.45, cy - h * 0.1, w * 0.25, h * 0.4, np.pi * 1.05, np.pi * 1.4, 6), "white",
           detail=2, width=0.015)   # shine
    _fit(b)


_PEAR_C = (1 - np.cos(np.linspace(0, np.pi, 22))) / 2


@category("pear", "food")
def pear(b):
    rb = b.uniform("bulb", 0.22, 0.28)          # radius of the bottom bulb
    rt = b.uniform("neck", 0.085, 0.12)         # radius of the top (neck) part
    gap = b.uniform("length", 0.26, 0.34)       # distance between the two centres
    lean = b.uniform("lean", -0.08, 0.08)
    stem = b.uniform("stem", 0.07, 0.13)
    leaf = b.choice("leaf", ["none", "left", "right"])
    col = b.choice("color", ["lime", "yellow", "green", "gold", "olive"])
    cx = 0.5
    yb = 0.9 - rb
    yt = yb - gap
    ys = yt - rt + (yb + rb - (yt - rt)) * _PEAR_C
    h1 = np.sqrt(np.clip(rt ** 2 - (ys - yt) ** 2, 0, None))
    h2 = np.sqrt(np.clip(rb ** 2 - (ys - yb) ** 2, 0, None))
    hs = (h1 ** 2.5 + h2 ** 2.5) ** (1 / 2.5)
    hs = hs + 0.12 * rt * np.exp(-((ys - (yt + yb) / 2) / (gap * 0.5)) ** 2) * (hs > 0)  # fill the waist
    xs = cx + lean * (yb - ys) / gap
    right = _xy(xs + hs, ys)
    left = _xy(xs - hs, ys)[-2:0:-1]
    b.poly(np.concatenate([right, left]), col, detail=0)
    top = (xs[0], yt - rt + 0.01)
    ang = lean * 2.0
    end = (top[0] + np.sin(ang) * stem + 0.01, top[1] - np.cos(ang) * stem)
    b.line([top, ((top[0] + end[0]) / 2 - 0.01, (top[1] + end[1]) / 2), end], "brown", detail=0, width=0.025)
    if leaf != "none":
        s = 1 if leaf == "right" else -1
        base = ((top[0] + end[0]) / 2, (top[1] + end[1]) / 2)
        b.poly(_leaf_pts(base, -np.pi / 2 + s * 1.0, 0.13, 0.04), "green", detail=1)
    for k in range(3):   # speckles
        a = 0.8 + 1.6 * k
        b.poly(_ell(xs[-3] + rb * 0.5 * np.cos(a), yb + rb * 0.45 * np.sin(a), 0.008, 0.008, 6), "brown", detail=2)
    _fit(b)


_BAN_TH = np.sin(np.pi * np.clip(np.linspace(0, 1, 20) * 0.94 + 0.03, 0, 1)) ** 0.55


@category("banana", "food")
def banana(b):
    R = b.uniform("curvature_radius", 0.3, 0.48)   # larger = straighter
    span = b.uniform("span", 1.1, 1.3) * (0.62 / R)   # arc length kept ~ constant
    T = b.uniform("thickness", 0.075, 0.1)
    count = b.integer("count", 1, 3)
    ang = b.uniform("angle", -0.45, 0.45)
    col = b.choice("color", ["yellow", "gold", "lime"])
    cx = 0.5
    cy = 0.58 - R + 0.05 * (count - 1)           # circle centre above, the banana smiles
    a0, a1 = np.pi / 2 - span / 2, np.pi / 2 + span / 2
    piv = (0.5, 0.5)
    th = T * _BAN_TH + 0.008
    for k in range(count):
        a = _span(a0 + 0.12 * k, a1, 20)
        d = _xy(np.cos(a), np.sin(a))
        c = np.array([cx, cy - 0.1 * k])
        outer = c + d * (R + th)[:, None]
        inner = c + d * (R - 0.8 * th)[:, None]
        b.poly(_rot(np.concatenate([outer, inner[::-1]]), ang, piv), col, detail=0)
        # stem at the a1 end (left), dark tip at the a0 end (right)
        e = c + R * d[-1]
        tang = np.array([d[-1, 1], -d[-1, 0]])
        stem = _rot([e - tang * 0.005, e + tang * 0.08 + (0, -0.012)], ang, piv)
        b.segment_rect(stem[0], stem[1], 0.032, "olive", detail=0)
        tp = _rot([c + R * d[0]], ang, piv)[0]
        b.poly(_ell(tp[0], tp[1], 0.014, 0.014, 8), "brown", detail=2)
        if k == count - 1:
            b.line(_rot(c + d[4:-4] * R, ang, piv), "olive", detail=2, width=0.01)          # ridge
    _fit(b)


@category("grapes", "food")
def grapes(b):
    rows = b.integer("rows", 3, 5)
    r = b.uniform("grape_radius", 0.065, 0.08)
    lean = b.uniform("lean", -0.03, 0.03)        # horizontal drift per row
    leaf = b.choice("leaf", ["none", "left", "right"])
    stem = b.uniform("stem", 0.06, 0.12)
    col = b.choice("color", ["purple", "green", "lime", "darkred", "navy"])
    widths = {3: [4, 3, 2], 4: [4, 3, 2, 1], 5: [4, 4, 3, 2, 1]}[rows]
    dy = r * 1.5
    top_y = 0.5 - dy * (rows - 1) / 2 + 0.02
    cx = 0.5
    centres = []
    for i, n in enumerate(widths):
        for j in range(n):
            centres.append((cx + lean * i + (j - (n - 1) / 2) * r * 1.8, top_y + i * dy))
    centres = np.array(centres) + b.rng.normal(0, r * 0.08, (len(centres), 2))
    for x, y in centres[::-1]:                   # bottom first; the top grapes overlap them
        b.poly(_ell(x, y, r, r, 16), col, detail=0)
    sy = top_y - r * 0.9
    b.line([(cx, sy), (cx + 0.01, sy - stem * 0.6), (cx - 0.01, sy - stem)], "brown", detail=0, width=0.025)
    if leaf != "none":
        s = 1 if leaf == "right" else -1
        base = (cx, sy - stem * 0.5)
        pts = _leaf_pts(base, -np.pi / 2 + s * 1.1, 0.2, 0.08, n=11)
        b.poly(pts, "green", detail=1)
        b.line([base, pts[5]], "darkgreen", detail=2, width=0.01)
    for x, y in centres[:3]:                     # shine on a few grapes
        b.line(_arcp(x, y, r * 0.55, r * 0.55, np.pi * 1.1, np.pi * 1.45, 5), "white", detail=2, width=0.01)
    _fit(b)


@category("watermelon", "food")
def watermelon(b):
    W = b.uniform("width", 0.34, 0.4)           # half-width of the slice (chord on top)
    D = b.uniform("depth", 0.22, 0.36)          # depth of the curved part
    rind = b.uniform("rind", 0.035, 0.06)
    seeds = b.integer("seeds", 4, 9)
    bite = b.choice("bite", ["none", "left", "right"])
    col = b.choice("color", ["red", "pink", "yellow"])
    cx, cy = 0.5, 0.5 - D / 2 + 0.02
    br = b.uniform("bite_size", 0.06, 0.09) if bite != "none" else b.attr("bite_size", 0.0)
    bx = cx + (0.55 if bite == "right" else -0.55) * W
    dent = _arcp(bx, cy, br, br * 0.9, np.pi, 0.0, 9)[::-1] if bite != "none" else None

    def outline(rx, ry):
        arc = _arcp(cx, cy, rx, ry, 0.0, np.pi, 24)              # right -> bottom -> left
        if dent is None or abs(bx - cx) + br > rx:
            return arc
        return np.concatenate([arc, dent])                         # a bite out of the top edge

    b.poly(outline(W, D), "green", detail=0)
    b.poly(outline(W - rind * 0.5, D - rind * 0.5), "lime", detail=2)       # pale inner rind
    b.poly(outline(W - rind, D - rind), col, detail=0)
    for k in range(seeds):
        t = np.pi * (k + 0.5) / seeds
        rr = 0.55 + 0.15 * (k % 2)
        sx, sy = cx + (W - rind) * rr * np.cos(t), cy + (D - rind) * rr * np.sin(t) - 0.01
        if dent is not None and np.hypot(sx - bx, sy - cy) < br * 1.3:
            continue
        b.poly(_teardrop(sx, sy, 0.021, t - np.pi), "black", detail=1)
    _fit(b)


# -- dishes --------------------------------------------------------------------------------------
@category("pizza", "food")
def pizza(b):
    style = b.choice("style", ["slice", "whole"])
    crust = b.uniform("crust", 0.035, 0.06)
    n_pep = b.integer("pepperoni", 2, 6)
    col = b.choice("color", ["gold", "yellow", "orange"])
    rnd = b.rng.random((n_pep + 3, 3))
    if style == "slice":
        half = b.uniform("slice_angle", 0.28, 0.42)    # half opening angle of the slice
        L = b.uniform("length", 0.6, 0.7)
        tilt = b.uniform("tilt", -0.25, 0.25)
        b.attr("slices", 0)
        b.attr("missing", 0)
        tip = np.array([0.5, 0.5 + L * 0.55])
        mid = -np.pi / 2 + tilt
        a = _span(mid - half, mid + half, 14)
        d = _xy(np.cos(a), np.sin(a))
        b.poly(np.concatenate([tip[None], tip + d * (L - crust)]), col, detail=0)
        b.poly(np.concatenate([tip + d * (L - crust * 1.05), (tip + d * (L + crust * 0.6))[::-1]]), "tan",
               detail=0)
        for k in range(n_pep):                   # pepperoni inside the slice
            rad = 0.042 + 0.012 * rnd[k, 2]
            rr = min(L * (0.3 + 0.6 * rnd[k, 0]), L - crust - rad - 0.01)
            off = (2 * rnd[k, 1] - 1) * max(0.0, np.sin(half) * rr - rad - 0.005)   # sideways, inside the edges
            if np.sin(half) * rr < rad + 0.01:
                continue
            p = tip + rr * np.array([np.cos(mid), np.sin(mid)]) + off * np.array([-np.sin(mid), np.cos(mid)])
            b.poly(_ell(p[0], p[1], rad, rad, 14), "red", detail=1)
        for k in range(3):   # herbs
            rr = L * (0.35 + 0.5 * rnd[n_pep + k, 0])
            aa = mid + half * 0.6 * (2 * rnd[n_pep + k, 1] - 1)
            p = tip + rr * np.array([np.cos(aa), np.sin(aa)])
            b.line([p, p + (0.02, -0.015)], "darkgreen", detail=2, width=0.012)
    else:
        R = b.uniform("length", 0.34, 0.4)
        n = b.choice("slices", [6, 8])
        missing = b.integer("missing", 0, 1)
        b.attr("slice_angle", 0.0)
        tilt = b.uniform("tilt", 0, 2 * np.pi / n)
        c = np.array([0.5, 0.5])
        step = 2 * np.pi / n
        if missing:
            a = _span(tilt, tilt + 2 * np.pi - step, 36)
            d = _xy(np.cos(a), np.sin(a))
            b.poly(np.concatenate([c[None], c + d * R]), "tan", detail=0)
            b.poly(np.concatenate([c[None], c + d * (R - crust)]), col, detail=0)
        else:
            b.poly(_ell(c[0], c[1], R, R, 40), "tan", detail=0)
            b.poly(_ell(c[0], c[1], R - crust, R - crust, 40), col, detail=0)
        for k in range(1 if missing else 0, n):
            ang = tilt + k * step
            b.line([c, c + (R - crust) * np.array([np.cos(ang), np.sin(ang)])], "brown", detail=1, width=0.01)
        for k in range(n_pep):
            aa = tilt + (k + 0.5) * (2 * np.pi - missing * step) / n_pep + 0.4 * (rnd[k, 0] - 0.5)
            rr = (R - crust) * (0.35 + 0.35 * rnd[k, 1])
            p = c + rr * np.array([np.cos(aa), np.sin(aa)])
            b.poly(_ell(p[0], p[1], 0.05, 0.05, 14), "red", detail=1)
        for k in range(3):
            aa = tilt + rnd[n_pep + k, 0] * (2 * np.pi - missing * step)
            p = c + (R - crust) * (0.2 + 0.65 * rnd[n_pep + k, 1]) * np.array([np.cos(aa), np.sin(aa)])
            b.line([p, p + (0.02, -0.015)], "darkgreen", detail=2, width=0.012)
    _fit(b)


_SCOOP_WAVE = np.cos(np.linspace(0, 8 * np.pi, 9)) ** 2


@category("ice_cream", "food")
def ice_cream(b):
    scoops = b.integer("scoops", 1, 3)
    cw = b.uniform("cone_width", 0.13, 0.17)      # half-width of the cone top
    cl = b.uniform("cone_length", 0.3, 0.42)
    cherry = b.integer("cherry", 0, 1)
    offset = b.uniform("scoop_offset", -0.03, 0.03)   # how the scoop stack leans
    col = b.choice("color", ["pink", "cream", "brown", "lime", "white", "sky"])
    sr = (cw * 1.25) * (1 - 0.1 * (scoops - 1))
    total = cl + sr * (0.4 + 1.45 * scoops) + (0.06 if cherry else 0)
    yc = 0.5 + total / 2 - cl                     # y of the cone top
    cx = 0.5
    L, R, V = np.array([cx - cw, yc]), np.array([cx + cw, yc]), np.array([cx, yc + cl])
    b.poly([L, R, V], "tan", detail=0)
    for f in (0.33, 0.66):                        # waffle cross-hatch
        T = (1 - f) * L + f * R
        b.line([T, f * R + (1 - f) * V], "brown", detail=2, width=0.008)
        b.line([T, (1 - f) * L + f * V], "brown", detail=2, width=0.008)
    y = yc
    top = None
    for k in range(scoops):
        r = sr * (1 - 0.06 * k)
        ccx = cx + offset * (k + 1)
        ccy = y - r * 0.55
        upper = _arcp(ccx, ccy, r, r, np.pi * 0.92, np.pi * 2.08, 18)     # upper part of the scoop
        xs = _span(upper[-1, 0], upper[0, 0], 9)                          # scalloped lower rim
        lower = _xy(xs, ccy + r * 0.38 + 0.018 * _SCOOP_WAVE)
        b.poly(np.concatenate([upper, lower]), col, detail=0)
        top = (ccx, ccy - r)
        y = ccy - r * 0.9
    if cherry:
        b.poly(_ell(top[0], top[1] - 0.025, 0.035, 0.035, 14), "red", detail=1)
        b.line(_arcp(top[0] + 0.04, top[1] - 0.06, 0.04, 0.05, np.pi * 0.95, np.pi * 1.5, 6), "darkred", detail=1,
               width=0.01)
    rnd = b.rng.random((4, 3))
    for k in range(4):                            # sprinkles on the top scoop
        px = top[0] + (1.2 * rnd[k, 0] - 0.6) * sr
        py = top[1] + sr * (0.35 + 0.45 * rnd[k, 1])
        ang = rnd[k, 2] * np.pi
        b.line([(px, py), (px + 0.025 * np.cos(ang), py + 0.025 * np.sin(ang))], "magenta", detail=2,
               width=0.012)
    _fit(b)


@category("cake", "food")
def cake(b):
    tiers = b.integer("tiers", 1, 3)
    W = b.uniform("width", 0.3, 0.38)            # half-width of the bottom tier
    H = b.uniform("tier_height", 0.17, 0.25) * (1 - 0.2 * (tiers - 1))
    candles = b.integer("candles", 1, 5)
    drips = b.integer("drips", 3, 6)
    col = b.choice("color", ["pink", "white", "brown", "cream", "yellow"])
    icing = "white" if col != "white" else "pink"
    cx = 0.5
    ell = 0.25                                    # ellipse squash (perspective)
    widths = [W * 0.74 ** k for k in range(tiers)]
    total = tiers * H + widths[-1] * ell + 0.14 + W * ell
    y1 = 0.5 + total / 2 - W * ell               # bottom of the bottom tier (front centre is lower)
    b.poly(_ell(cx, y1 + 0.01, W * 1.2, W * 1.2 * ell, 24), "lightgray", detail=2)   # plate
    nd = 4 * drips + 1
    wave = np.sin(_span(0.0, drips * np.pi, nd)) ** 2
    for w in widths:
        y0 = y1 - H
        body = np.concatenate([[(cx + w, y0)], _arcp(cx, y1, w, w * ell, 0.0, np.pi, 14), [(cx - w, y0)]])
        b.poly(body, col, detail=0)
        b.poly(_ell(cx, y0, w, w * ell, 24), icing, detail=0)
        # icing drips hanging over the front edge: one scalloped stroke
        xs = _span(cx - w, cx + w, nd)
        base = y0 + w * ell * np.sqrt(np.clip(1 - ((xs - cx) / w) ** 2, 0, 1))
        b.line(_xy(xs, base + H * 0.28 * wave), icing, detail=1, width=0.02)
        if tiers == 1:
            b.line(_arcp(cx, y0 + H * 0.6, w, w * ell, 0.15, np.pi - 0.15, 10), "darkred", detail=2,
                   width=0.012)  # filling
        y1 = y0 + w * ell * 0.3
    w = widths[-1]
    ytop = y1 - w * ell * 0.3
    gapc = min(0.075, 1.5 * w / candles)
    for k in range(candles):
        x = cx + (k - (candles - 1) / 2) * gapc
        yy = ytop + w * ell * 0.5 * np.sqrt(max(0.0, 1 - ((x - cx) / w) ** 2))
        b.rect(x - 0.012, yy - 0.1, x + 0.012, yy, color="sky", detail=0)
        b.poly(_teardrop(x, yy - 0.125, 0.02, -np.pi / 2), "orange", detail=1)
    _fit(b)


_PATTY_BUMP = 0.006 * np.cos(np.arange(10) * 2.3)
_LETTUCE = 0.015 * np.sin(np.arange(15) * np.pi / 2 + 1)
_DOME = np.linspace(0, np.pi, 20)


@category("hamburger", "food")
def hamburger(b):
    W = b.uniform("width", 0.33, 0.4)            # half-width
    bun = b.uniform("bun_height", 0.16, 0.24)     # top bun dome height
    patties = b.integer("patties", 1, 2)
    cheese = b.integer("cheese", 0, 1)
    lettuce = b.integer("lettuce", 0, 1)
    seeds = b.integer("seeds", 3, 7)
    col = b.choice("color", ["tan", "gold", "brown"])
    cx = 0.5
    pt = 0.065
    stack = 0.075 + patties * pt + cheese * 0.02 + lettuce * 0.035 + bun
    y = 0.5 + stack / 2                           # bottom of the burger; build upward
    b.poly(_rounded_rect(cx - W, y - 0.075, cx + W, y, 0.035), col, detail=0)     # bottom bun
    y -= 0.075
    for k in range(patties):                      # patty: a slightly wider, bumpy dark slab
        xs = _span(cx - W - 0.015, cx + W + 0.015, 10)
        pat = np.concatenate([_xy(xs[::-1], np.full(10, y)), _xy(xs, y - pt + _PATTY_BUMP)])
        b.poly(pat, "brown", detail=0)
        y -= pt
        if cheese and k == 0:                     # a cheese slice dripping over the patty
            xs = _span(cx - W - 0.02, cx + W + 0.02, 7)
            drop = np.full(7, y + 0.015)
            drop[2] = y + 0.06
            drop[5] = y + 0.05
            b.poly(np.concatenate([_xy(xs, np.full(7, y - 0.02)), _xy(xs, drop)[::-1]]),
                   "yellow", detail=1)
            y -= 0.02
    if lettuce:
        xs = _span(cx - W - 0.03, cx + W + 0.03, 15)
        let = np.concatenate([_xy(xs, y + 0.01 + _LETTUCE), _xy(xs[::-1], np.full(15, y - 0.035))])
        b.poly(let, "lime", detail=1)
        y -= 0.035
    dome = _xy(cx + W * np.cos(_DOME), y + 0.01 - bun * np.sin(_DOME) ** 0.8)     # top bun
    b.poly(np.concatenate([dome, [(cx - W + 0.02, y + 0.015), (cx + W - 0.02, y + 0.015)]]), col, detail=0)
    for k in range(seeds):                         # sesame seeds
        u = (k + 0.5) / seeds
        sx = cx + W * 0.75 * (2 * u - 1)
        sy = y - bun * (0.35 + 0.35 * np.sqrt(max(0.0, 1 - (2 * u - 1) ** 2))) + 0.01 * ((k * 7) % 3 - 1)
        b.poly(_rot(_ell(sx, sy, 0.014, 0.008, 8), 0.5 * (k % 3 - 1), (sx, sy)), "cream", detail=2)
    _fit(b)


_CARROT_U = np.linspace(0, 1, 16)
_CARROT_CAP = np.linspace(np.pi, 2 * np.pi, 7)[1:-1]


@category("carrot", "food")
def carrot(b):
    L = b.uniform("length", 0.5, 0.66)
    tw = b.uniform("top_width", 0.09, 0.125)      # half-width at the top
    bend = b.uniform("bend", -0.06, 0.06)         # tip curvature
    ang = b.uniform("angle", -0.7, 0.7)           # how the carrot lies
    leaves = b.integer("leaves", 3, 5)
    ridges = b.integer("ridges", 2, 4)
    col = b.choice("color", ["orange", "gold", "purple"])
    cx = 0.5
    top = 0.5 - L / 2 + 0.08
    u = _CARROT_U
    ys = top + u * L
    hs = tw * (1 - u) ** 0.85 + 0.004
    xo = cx + bend * u ** 2
    cap = _xy(cx + tw * np.cos(_CARROT_CAP), top + tw * 0.35 * np.sin(_CARROT_CAP))
    body = np.concatenate([cap, _xy(xo + hs, ys), _xy(xo - hs, ys)[::-1]])
    centre = (cx, 0.54)
    for k in range(leaves):                       # leaves first: the body covers their bases
        j = k - (leaves - 1) / 2
        ll = 0.24 * (1 - 0.35 * abs(j) / max(1, leaves - 1))
        pts = _leaf_pts((cx + j * 0.015, top + 0.02), -np.pi / 2 + j * 0.42, ll, 0.03, n=8)
        b.poly(_rot(pts, ang, centre), "green", detail=0)
    b.poly(_rot(body, ang, centre), col, detail=0)
    for k in range(ridges):
        v = (k + 1) / (ridges + 1.3)
        yy = top + v * L
        hw = tw * (1 - v) ** 0.85
        side = 1 if k % 2 == 0 else -1
        xv = cx + bend * v ** 2
        b.line(_rot([(xv + side * hw, yy), (xv + side * hw * 0.3, yy + 0.012)], ang, centre), "brown", detail=2,
               width=0.01)
    _fit(b)
