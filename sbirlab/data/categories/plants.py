"""Drawing programs: plants.

Every program draws its plant in free coordinates and then fits it into ``[0.1, 0.9]^2`` with
:func:`_fit` (largest side 0.8, centred), so proportions are the instance's attributes and framing is
uniform across classes. Curves use cached unit tables (the programs run millions of times).
"""
from __future__ import annotations

import math

import numpy as np

from ._registry import category

from ._curve_kit import _CACHE, _TAU, _ell, _lin, _unit, _xy


def _band(x, y, w) -> np.ndarray:
    """A closed band of half-width ``w`` (horizontal offset) around the centreline ``(x, y)``."""
    return np.concatenate([_xy(x - w, y), _xy(x + w, y)[::-1]])


def _fit(b, extent: float = 0.8) -> None:
    """Scale and centre every part of the instance so its bounding box's longer side is ``extent``."""
    pts = np.concatenate([p.points for p in b.parts])
    lo, hi = pts.min(0), pts.max(0)
    s = extent / max(float((hi - lo).max()), 1e-6)
    pts = (pts * s + (0.5 - (lo + hi) / 2 * s)).astype(np.float32)
    i = 0
    for p in b.parts:
        n = len(p.points)
        p.points = pts[i:i + n]
        p.width *= s
        i += n


def _leaf(x0, y0, ang, length, width, n=9, bend=0.0) -> np.ndarray:
    """A pointed leaf outline from ``(x0, y0)`` along direction ``ang`` (radians, y down), bent down."""
    s = _lin(n)
    ca, sa = math.cos(ang), math.sin(ang)
    cx = x0 + length * s * ca
    cy = y0 + length * s * sa + bend * length * s * s
    ty = sa + 2 * bend * s
    nn = np.sqrt(ca * ca + ty * ty)
    nx, ny = -ty / nn, ca / nn
    w = width * np.sin(np.pi * s) ** 0.9
    return np.concatenate([_xy(cx + nx * w, cy + ny * w), _xy(cx - nx * w, cy - ny * w)[-2:0:-1]])


def _chord(cx, cy, r, a, off):
    """The chord of the circle ``(cx, cy, r)`` along direction ``a`` at signed offset ``off``."""
    h = math.sqrt(max(r * r - off * off, 0.0))
    ca, sa = math.cos(a), math.sin(a)
    mx, my = cx - sa * off, cy + ca * off
    return [(mx - ca * h, my - sa * h), (mx + ca * h, my + sa * h)]


# ---------------------------------------------------------------------------------------------
@category("tree", "plants")
def tree(b):
    """A broad-leaved tree: a forked trunk under a cloud-shaped crown of round lobes."""
    cw = b.uniform("crown_width", 0.5, 0.78)
    ch = b.uniform("crown_height", 0.36, 0.56)
    th = b.uniform("trunk_height", 0.16, 0.34)        # visible trunk below the crown
    lobes = b.integer("lobes", 6, 11)
    nbr = b.integer("branches", 2, 3)
    fruits = b.integer("fruits", 0, 4)
    col = b.choice("color", ["green", "darkgreen", "lime", "olive", "orange"])
    rng = b.rng
    r = rng.random(12)
    cx, cy = 0.5, 0.1 + ch / 2
    rx, ry = cw / 2, ch / 2
    ybot = cy + ry                                   # crown bottom
    yg = ybot + th                                   # ground
    # trunk, forking into branches that reach into the crown
    w = 0.045 + 0.1 * cw * (0.8 + 0.4 * r[0])
    yf = ybot + 0.02 - th * 0.1                      # fork height
    pts = [(cx - w * 0.95, yg), (cx - w * 0.5, yg - 0.03), (cx - w * 0.42, yf)]
    tips = [rx * (-0.5 + i / (nbr - 1)) + 0.06 * (r[1 + i] - 0.5) for i in range(nbr)]
    for i in range(nbr):
        ty = cy + ry * (-0.1 + 0.45 * r[4 + i])
        pts.append((cx + tips[i] - 0.012, ty))
        pts.append((cx + tips[i] + 0.012, ty - 0.005))
        if i < nbr - 1:
            pts.append((cx + (tips[i] + tips[i + 1]) / 4, yf - 0.06 - 0.03 * (nbr - 2)))
    pts += [(cx + w * 0.42, yf), (cx + w * 0.5, yg - 0.03), (cx + w * 0.95, yg)]
    b.poly(pts, "brown", detail=0)
    # the crown: an ellipse scalloped into round lobes of slightly different sizes
    n = 7 * lobes
    c, s = _unit(n)
    amp = 0.15 + 0.07 * rng.random(lobes)
    ph = math.pi * r[7]
    t = np.arange(n) * (_TAU / n) + ph
    rad = 0.83 + amp[(np.floor(lobes * (t % _TAU) / _TAU)).astype(int) % lobes] * np.abs(np.sin(lobes * t / 2)) ** 0.6
    b.poly(_xy(cx + rx * rad * c, cy + ry * rad * s), col, detail=0)
    # inner leaf scallops (secondary) and bark lines (fine)
    for k in range(2):
        ax, ay = cx + (r[8 + k] - 0.5) * rx, cy + (-0.55 + 0.65 * r[10 + k]) * ry
        a0 = 0.2 + 0.8 * r[9 - k]
        b.line(_ell(ax, ay, 0.05, 0.04, a0, 8, 0.0, 2.2), "darkgreen", detail=1, width=0.012)
    for dx in (-0.3, 0.25):
        x = cx + dx * w
        b.line([(x, yg - 0.04), (x + 0.01, yg - 0.04 - th * 0.45)], "darkgray", detail=2, width=0.008)
    if fruits:
        fa = rng.uniform(0, _TAU, fruits)
        fr = rng.uniform(0.3, 0.7, fruits)
        for a, rr in zip(fa, fr):
            b.poly(_ell(cx + rx * rr * math.cos(a), cy + ry * rr * math.sin(a), 0.025, 0.025, n=10), "red",
                   detail=2)
    _fit(b)


@category("pine_tree", "plants")
def pine_tree(b):
    """A conifer: one jagged triangular outline of stacked tiers over a short trunk."""
    tiers = b.integer("tiers", 3, 6)
    width = b.uniform("width", 0.4, 0.7)             # bottom tier width
    height = b.uniform("height", 0.6, 0.82)          # canopy height
    th = b.uniform("trunk_height", 0.05, 0.13)
    notch = b.uniform("notch", 0.45, 0.75)           # tier notch depth (1 = none)
    col = b.choice("color", ["darkgreen", "green", "teal", "olive"])
    rng = b.rng
    r = rng.random(8)
    cx, top = 0.5, 0.08
    ybot = top + height
    tw = 0.035 + width * 0.06
    b.rect(cx - tw, ybot - 0.02, cx + tw, ybot + th, "brown", detail=0)
    # tier i spans [ye_i - seg, ye_i]; tiers overlap
    seg = height / (tiers * 0.72 + 0.28)
    droop = 0.02 + 0.03 * r[0]
    right = [(cx, top)]
    tier_lines = []
    for i in range(tiers):
        ye = top + seg * (0.72 * i + 1.0)
        hw = width / 2 * (0.32 + 0.68 * (i + 1) / tiers)
        right.append((cx + hw * 0.55, ye - seg * 0.45))
        right.append((cx + hw, ye + droop))          # outer tip droops below the tier line
        if i < tiers - 1:
            hin = hw * notch * (0.85 + 0.3 * r[1 + i])
            right.append((cx + hin, ye - 0.01))
            tier_lines.append((ye, hin))
    right_pts = np.array(right)
    left_pts = right_pts[-1:0:-1].copy()
    left_pts[:, 0] = 2 * cx - left_pts[:, 0]
    yb = top + seg * (0.72 * (tiers - 1) + 1.0)
    b.poly(np.concatenate([right_pts, [(cx, yb - 0.015)], left_pts]), col, detail=0)
    # secondary: the hidden lower edge of each upper tier, drawn as a drooping bough line
    u = _lin(7) * 2 - 1
    for ye, hin in tier_lines:
        b.line(_xy(cx + hin * 0.9 * u, ye - 0.01 + 0.025 * (1 - u * u)), "darkgreen", detail=1, width=0.012)
    # fine: a few needle ticks
    nt = int(rng.integers(2, 5))
    q = rng.random((nt, 3))
    for qi in q:
        i = int(qi[0] * tiers)
        ye = top + seg * (0.72 * i + 1.0)
        hw = width / 2 * (0.32 + 0.68 * (i + 1) / tiers)
        dx = (qi[1] - 0.5) * hw
        y = ye - seg * (0.15 + 0.25 * qi[2])
        b.line([(cx + dx, y), (cx + dx + (0.02 if dx >= 0 else -0.02), y + 0.03)], "darkgreen", detail=2,
               width=0.01)
    _fit(b)


@category("palm_tree", "plants")
def palm_tree(b):
    """A palm: a tall, bent, ringed trunk topped by a fan of drooping jagged fronds."""
    trunk_h = b.uniform("trunk_height", 0.45, 0.65)
    lean = b.uniform("lean", -0.18, 0.18)            # horizontal offset of the top
    fronds = b.integer("fronds", 5, 8)
    flen = b.uniform("frond_length", 0.24, 0.36)
    nuts = b.integer("coconuts", 0, 4)
    col = b.choice("color", ["green", "darkgreen", "lime", "olive"])
    rng = b.rng
    x0, yg = 0.5 - lean * 0.5, 0.9
    xt, yt = 0.5 + lean * 0.5, yg - trunk_h
    # trunk: a curved tapering band
    s = _lin(10)
    bow = rng.uniform(0.03, 0.08) * (1 if lean >= 0 else -1)
    mx = x0 + (xt - x0) * s - bow * np.sin(np.pi * s)
    my = yg + (yt - yg) * s
    w = 0.038 - 0.016 * s
    b.poly(_band(mx, my, w), "tan", detail=0)
    # coconuts under the crown
    for i in range(nuts):
        a = math.pi / 2 + (i - (nuts - 1) / 2) * 0.55
        b.poly(_ell(xt + 0.04 * math.cos(a), yt + 0.035 * math.sin(a) + 0.015, 0.024, 0.024, n=10), "brown",
               detail=1)
    # fronds: a fan from left through up to right, each with jagged leaflets (vectorised over fronds)
    angs = np.linspace(math.pi - 0.3, _TAU + 0.3, fronds) + rng.uniform(-0.12, 0.12, fronds)
    L = flen * rng.uniform(0.85, 1.15, fronds)[:, None]
    u = _lin(13)[None, :]
    prof = _CACHE.get("palm")
    if prof is None:
        z = np.where(np.arange(13) % 2 == 0, 1.0, 0.45)
        prof = _CACHE["palm"] = 0.05 * np.sin(np.pi * np.clip(_lin(13) * 0.92 + 0.04, 0, 1)) ** 0.7 * z
        prof[0] = 0.004
    ca, sa = np.cos(angs)[:, None], np.sin(angs)[:, None]
    droop = 0.55 * (1 - np.abs(sa)) + 0.25
    cxs = xt + L * u * ca
    cys = yt + L * u * sa + droop * L * u * u
    ty = sa + 2 * droop * u
    nn = np.sqrt(ca * ca + ty * ty)
    nx, ny = -ty / nn * prof, ca / nn * prof
    outline = np.concatenate([np.stack([cxs + nx, cys + ny], 2), np.stack([cxs - nx, cys - ny], 2)[:, ::-1]], 1)
    for f in range(fronds):
        b.poly(outline[f], col, detail=0)
    # fine: trunk rings
    for j in (1, 3, 5, 7):
        b.line([(mx[j] - w[j], my[j] + 0.012), (mx[j], my[j]), (mx[j] + w[j], my[j] + 0.012)],
               "brown", detail=2, width=0.008)
    _fit(b)


@category("flower", "plants")
def flower(b):
    """A garden flower: a few big rounded petals round a small centre on a thin stem with leaves."""
    petals = b.integer("petals", 4, 8)
    plen = b.uniform("petal_length", 0.12, 0.18)
    pwid = b.uniform("petal_width", 0.45, 0.8)       # petal width / length
    stem = b.uniform("stem_height", 0.25, 0.45)
    bend = b.uniform("stem_bend", -0.08, 0.08)
    leaves = b.integer("leaves", 0, 2)
    col = b.choice("color", ["red", "pink", "purple", "blue", "magenta", "white", "orange"])
    r = b.rng.random(4)
    hx, hy = 0.5 + bend, 0.28
    yg = hy + stem + plen
    # stem: a single curve from the ground to the head
    s = _lin(8)
    sx = 0.5 + bend * s + 0.6 * bend * np.sin(np.pi * s)
    sy = yg + (hy - yg) * s
    b.line(_xy(sx, sy), "green", detail=0, width=0.022)
    side = 1 if r[0] < 0.5 else -1
    for i in range(leaves):
        j = 2 + 2 * i
        ang = -math.pi / 2 + side * (1.0 + 0.3 * r[1 + i])
        b.poly(_leaf(sx[j], sy[j], ang, 0.14, 0.035, bend=0.25), "green", detail=1)
        side = -side
    # petals: ellipses whose inner end touches the centre (vectorised over petals)
    rc = plen * 0.38
    a = r[3] * _TAU + np.arange(petals) * (_TAU / petals)
    ca, sa = np.cos(a)[:, None], np.sin(a)[:, None]
    c, sn = _unit(16)
    ex, ey = plen / 2 * c[None, :], plen / 2 * pwid * sn[None, :]
    d = rc * 0.7 + plen / 2
    px = hx + d * ca + ca * ex - sa * ey
    py = hy + d * sa + sa * ex + ca * ey
    pet = np.stack([px, py], 2)
    for k in range(petals):
        b.poly(pet[k], col, detail=0)
    b.poly(_ell(hx, hy, rc, rc, n=16), "yellow", detail=0)
    # fine: petal veins
    for k in range(min(petals, 5)):
        ck, sk = ca[k, 0], sa[k, 0]
        b.line([(hx + rc * 1.1 * ck, hy + rc * 1.1 * sk), (hx + (rc + plen * 0.6) * ck, hy + (rc + plen * 0.6) * sk)],
               "darkred", detail=2, width=0.006)
    _fit(b)


@category("sunflower", "plants")
def sunflower(b):
    """A sunflower: a big seeded disc in a ring of many narrow pointed petals on a thick stem."""
    petals = b.integer("petals", 14, 24)
    disc = b.uniform("disc_radius", 0.1, 0.15)
    plen = b.uniform("petal_length", 0.07, 0.12)
    stem = b.uniform("stem_height", 0.28, 0.45)
    leaves = b.integer("leaves", 1, 3)
    col = b.choice("color", ["yellow", "gold", "orange"])
    rng = b.rng
    r = rng.random(8)
    hx, hy = 0.5, 0.1 + disc + plen
    yg = hy + disc + stem
    # thick stem as a band, then big pointed leaves
    s = _lin(6)
    bend = 0.1 * (r[0] - 0.5)
    sx = hx + bend * np.sin(np.pi * s * 0.8)
    sy = yg + (hy + disc * 0.8 - yg) * s
    sw = 0.02 + 0.012 * r[1]
    b.poly(_band(sx, sy, sw), "green", detail=0)
    side = 1 if r[2] < 0.5 else -1
    for i in range(leaves):
        j = 1 + i
        ang = -math.pi / 2 + side * (1.25 + 0.25 * r[3 + i])
        b.poly(_leaf(sx[j] + side * sw, sy[j], ang, 0.19, 0.045, n=11, bend=0.3), "darkgreen", detail=1)
        side = -side
    # petal ring: one star-shaped outline of pointed petals
    m = 2 * petals
    t = np.arange(m) * (_TAU / m) + r[6] * _TAU
    rad = np.full(m, disc * 0.92)
    rad[0::2] = disc + plen * (1 + 0.12 * (rng.random(petals) - 0.5))
    b.poly(_xy(hx + rad * np.cos(t), hy + rad * np.sin(t)), col, detail=0)
    b.poly(_ell(hx, hy, disc, disc, n=28), "brown", detail=0)
    # secondary: inner ring; fine: the seed lattice
    b.poly(_ell(hx, hy, disc * 0.6, disc * 0.6, n=20), "darkred", detail=1)
    a = r[7] * math.pi
    for da in (math.pi / 4, -math.pi / 4):
        for off in (-0.45, 0.0, 0.45):
            b.line(_chord(hx, hy, disc * 0.92, a + da, off * disc), "black", detail=2, width=0.006)
    _fit(b)


@category("cactus", "plants")
def cactus(b):
    """A saguaro cactus: a round-topped column with upturned arms, on the ground or in a pot."""
    h = b.uniform("height", 0.62, 0.85)
    w = b.uniform("width", 0.14, 0.22)
    arms = b.integer("arms", 1, 3)
    arm_y = b.uniform("arm_height", 0.5, 0.75)       # where the first arm leaves the column
    pot = b.integer("pot", 0, 1)
    col = b.choice("color", ["green", "darkgreen", "olive", "lime"])
    rng = b.rng
    r = rng.random(10)
    cx, yb = 0.5, 0.9
    top = yb - h
    hw = w / 2
    # column with a round top
    dome = _ell(cx, top + hw, hw, hw, n=12, a0=math.pi, a1=_TAU)
    b.poly(np.concatenate([[(cx - hw, yb)], dome, [(cx + hw, yb)]]), col, detail=0)
    # arms: elbow out of the side, then up; the arm's inner end lies on the column's edge
    sides = (1, -1, 1) if r[0] < 0.5 else (-1, 1, -1)
    aw = w * 0.58
    qc, qs = _unit(4, math.pi / 2, 0.0)             # quarter turn
    hc, hs = _unit(7, 0.0, math.pi)                 # half turn
    for i in range(arms):
        sd = sides[i]
        if arms < 3:
            y0 = top + h * (arm_y - 0.14 * i) * (0.95 + 0.1 * r[1 + i])
            y0 = min(max(y0, top + hw + aw + 0.14), yb - 0.1)
            out = w * (0.75 + 0.3 * r[4 + i])
        else:  # two arms on one side nest: the lower reaches further out, the upper stays close
            y_lo = min(max(top + h * arm_y, top + hw + 2 * aw + 0.15), yb - 0.08)
            y0 = (y_lo, y_lo - aw * 0.5 - 0.03 - 0.03 * r[1], y_lo - aw - 0.05)[i]
            out = w * ((1.3, 0.85, 0.55)[i] + 0.15 * r[4 + i])
        up = (y0 - aw - top - hw) * (0.45 + 0.4 * r[7 + i])
        xe = cx + sd * hw                           # column edge
        xc = xe + sd * out                          # arm centreline x
        xo, xi = xc + sd * aw / 2, xc - sd * aw / 2
        ro = min(aw * 1.1, out + aw / 2 - 0.005)
        ri = max(0.004, min(aw * 0.5, out - aw / 2 - 0.004))
        ytop = y0 - aw - up
        pts = np.concatenate([
            [(xe, y0)],
            _xy(xo - sd * ro + sd * ro * qc, y0 - ro + ro * qs),
            _xy(xc + sd * aw / 2 * hc, ytop - aw / 2 * hs),
            _xy(xi - sd * ri + sd * ri * qc[::-1], y0 - aw - ri + ri * qs[::-1]),
            [(xe, y0 - aw)]])
        b.poly(pts, col, detail=0)
    if pot:
        pw = w * 1.5
        b.poly([(cx - pw, yb - 0.02), (cx + pw, yb - 0.02), (cx + pw * 0.75, yb + 0.16),
                (cx - pw * 0.75, yb + 0.16)], "brick", detail=0)
        b.rect(cx - pw * 1.1, yb - 0.04, cx + pw * 1.1, yb + 0.015, "brick", detail=1)
    else:
        b.line([(cx - w * 2.2, yb), (cx + w * 2.2, yb)], "tan", detail=1, width=0.015)
    # fine: a rib and spines
    b.line([(cx, top + hw * 0.6), (cx, yb - 0.03)], "darkgreen", detail=2, width=0.008)
    q = rng.random((4, 2))
    for qi in q:
        sd = 1 if qi[0] < 0.5 else -1
        y = top + hw + (0.05 + 0.75 * qi[1]) * (h - hw)
        b.line([(cx + sd * hw, y), (cx + sd * (hw + 0.025), y - 0.012)], "darkgreen", detail=2, width=0.006)
    _fit(b)


@category("mushroom", "plants")
def mushroom(b):
    """A mushroom: a domed cap with an underside over a thick stem, cap spots, maybe a ring."""
    cw = b.uniform("cap_width", 0.5, 0.8)
    chh = b.uniform("cap_height", 0.5, 1.0)         # dome height / half width
    sh = b.uniform("stem_height", 0.22, 0.42)
    sw = b.uniform("stem_width", 0.1, 0.2)
    spots = b.integer("spots", 0, 6)
    col = b.choice("color", ["red", "brown", "tan", "orange", "beige"])
    rng = b.rng
    r = rng.random(3)
    cx = 0.5
    rx = cw / 2
    ry = rx * chh
    yc = 0.1 + ry                                     # cap base line
    under = 0.035 + 0.02 * r[0]                       # underside depth
    # stem: slightly bulging, wider foot
    s = _lin(7)
    hw = sw / 2 * (1 + 0.25 * s * s)
    ys = yc + under * 0.5 + sh * s
    b.poly(_band(cx + 0 * s, ys, hw), "cream", detail=0)
    # underside (gill plate), then the cap dome over it
    b.poly(_ell(cx, yc, rx * 0.93, under, n=20), "beige", detail=1)
    flare = 1.0 + 0.06 * r[1]
    cap = _ell(cx, yc, rx * flare, ry, n=20, a0=math.pi, a1=_TAU)
    lip = _ell(cx, yc, rx * 0.9, 0.02, n=8, a0=0.0, a1=math.pi)
    b.poly(np.concatenate([cap, lip]), col, detail=0)
    if r[2] < 0.4:
        b.poly([(cx - hw[1] * 1.5, ys[1] + 0.04), (cx + hw[1] * 1.5, ys[1] + 0.04), (cx + hw[1], ys[1]),
                (cx - hw[1], ys[1])], "white", detail=1)
    if spots:
        sa = rng.uniform(math.pi * 1.12, math.pi * 1.88, spots)
        sr = rng.uniform(0.3, 0.75, spots)
        for a, rr in zip(sa, sr):
            b.poly(_ell(cx + rx * rr * math.cos(a), yc + ry * rr * math.sin(a) + 0.01, 0.035, 0.025, n=10),
                   "white", detail=1)
    # fine: gills under the cap
    for xf in (-0.55, -0.2, 0.2, 0.55):
        b.line([(cx + xf * rx * 0.4, yc + under * 0.6), (cx + xf * rx, yc + under * 0.2)], "tan", detail=2,
               width=0.006)
    _fit(b)
