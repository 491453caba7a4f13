"""Drawing programs: tools.

Each program draws its tool upright or horizontal in free local coordinates (y down), then
:func:`_finish` rotates the whole tool by its ``tilt`` attribute (tools lie diagonally) and fits it
into ``[0.1, 0.9]^2`` (largest side 0.8, centred).
"""
from __future__ import annotations

import math

import numpy as np

from ._registry import category

from ._curve_kit import _CACHE, _TAU, _ell, _lin, _unit, _xy


def _arc_pts(cx, cy, r, a0, a1, n):
    t = np.linspace(a0, a1, n)
    return _xy(cx + r * np.cos(t), cy + r * np.sin(t))


def _finish(b, tilt: float = 0.0, extent: float = 0.8) -> None:
    """Rotate every part by ``tilt`` (radians) and fit the bounding box's longer side to ``extent``."""
    ca, sa = math.cos(tilt), math.sin(tilt)
    pts = np.concatenate([p.points for p in b.parts]) @ np.array([[ca, sa], [-sa, ca]])
    lo, hi = pts.min(0), pts.max(0)
    s = extent / max(float((hi - lo).max()), 1e-6)
    pts = (pts * s + (0.5 - (lo + hi) / 2 * s)).astype(np.float32)
    i = 0
    for p in b.parts:
        n = len(p.points)
        p.points = pts[i:i + n]
        p.width *= s
        i += n


def _smooth(pts, it: int = 2):
    """Chaikin corner cutting of a closed polygon (rounded corners)."""
    p = np.asarray(pts, dtype=np.float64)
    for _ in range(it):
        q = np.roll(p, -1, axis=0)
        p = np.stack([0.75 * p + 0.25 * q, 0.25 * p + 0.75 * q], 1).reshape(-1, 2)
    return p


# ---------------------------------------------------------------------------------------------
@category("hammer", "tools")
def hammer(b):
    """A claw hammer: a straight handle with a grip, a bar head with a flat face and a curved, split claw."""
    L = b.uniform("handle_length", 0.45, 0.65)
    hl = b.uniform("head_length", 0.3, 0.42)
    t = b.uniform("head_thickness", 0.075, 0.105)
    claw = b.uniform("claw_curve", 0.02, 0.09)
    tilt = b.uniform("tilt", 0.4, 1.0)
    col = b.choice("color", ["wood", "red", "black", "yellow", "blue", "orange"])
    rng = b.rng
    hw = 0.045 + 0.02 * rng.random()
    a, c = hl * 0.45, hl * 0.55                     # face side / claw side lengths
    # handle: slightly flaring toward the rounded end
    y1 = t + L
    hp = [(-hw / 2, t), (hw / 2, t), (hw * 0.62, y1 - hw * 0.4), (hw * 0.4, y1), (-hw * 0.4, y1),
          (-hw * 0.62, y1 - hw * 0.4)]
    b.poly(hp, col, detail=0)
    # head: face block, neck, and a claw curving down
    e, fw, xr = t * 0.14, 0.04, hw * 0.7
    s = _lin(7)
    ty = t * 0.45 + claw
    upper = np.stack([xr + (c - xr) * s, ty * s * s], 1)
    lower = np.stack([xr + (c - 0.025 - xr) * s, t + (ty + 0.03 - t) * s * s], 1)[::-1]
    head = np.concatenate([[(-a, -e), (-a + fw, -e), (-a + fw, t * 0.08), (-hw, 0.0)], upper, lower,
                           [(-hw, t), (-a + fw, t * 0.92), (-a + fw, t + e), (-a, t + e)]])
    b.poly(head, "silver", detail=0)
    # secondary: the claw's V split and the rubber grip; fine: grip rings and the wedge in the eye
    mid = (upper[2:] + lower[::-1][2:]) / 2
    b.line(mid, "darkgray", detail=1, width=0.01)
    g0 = y1 - L * rng.uniform(0.35, 0.45)
    b.poly([(-hw * 0.66, g0), (hw * 0.66, g0), (hw * 0.7, y1 - hw * 0.3), (hw * 0.45, y1 + 0.01),
            (-hw * 0.45, y1 + 0.01), (-hw * 0.7, y1 - hw * 0.3)], "black" if col != "black" else "darkgray",
           detail=1)
    for k in range(1, 4):
        yy = g0 + (y1 - g0) * k / 4
        b.line([(-hw * 0.6, yy), (hw * 0.6, yy)], "darkgray", detail=2, width=0.006)
    b.line([(-hw * 0.4, t * 0.25), (hw * 0.4, t * 0.75)], "darkgray", detail=2, width=0.006)
    _finish(b, tilt)


@category("saw", "tools")
def saw(b):
    """A hand saw: a long tapering blade with big teeth along its edge and a closed grip with a hand hole."""
    Lb = b.uniform("blade_length", 0.55, 0.75)
    h0 = b.uniform("heel_height", 0.17, 0.24)
    h1 = b.uniform("tip_height", 0.07, 0.12)
    teeth = b.integer("teeth", 7, 13)
    tilt = b.uniform("tilt", -0.75, 0.15)
    col = b.choice("color", ["wood", "red", "black", "orange", "yellow", "blue"])
    rng = b.rng
    sag = 0.015 * rng.random()
    # blade: back edge from heel to tip, tip, then the toothed edge back to the heel
    xs = Lb * _lin(6)
    back = np.stack([xs, -h0 + (h0 - h1) * xs / Lb + sag * np.sin(np.pi * xs / Lb)], 1)
    d = Lb / teeth
    th = min(0.045, d * 0.75)
    tx = Lb - d * np.arange(teeth + 1)
    zig = np.empty((2 * teeth + 1, 2))
    zig[0::2, 0], zig[0::2, 1] = tx, 0.0
    zig[1::2, 0], zig[1::2, 1] = tx[:-1] - d * 0.25, th
    b.poly(np.concatenate([back, zig]), "silver", detail=0)
    # grip: a slanted closed loop round a hand hole, over the heel
    hl = 0.17 + 0.05 * rng.random()
    top, bot = -h0 - 0.035, 0.09 + 0.04 * rng.random()
    outer = _smooth([(0.04, top + 0.01), (-hl * 0.55, top - 0.01), (-hl, top + 0.06), (-hl * 0.95, bot - 0.03),
                     (-hl * 0.7, bot), (-hl * 0.3, bot - 0.01), (0.04, th * 0.6)], 2)
    b.poly(outer, col, detail=0)
    cen = outer.mean(0) + np.array([0.015, 0.01])
    hole = (outer - cen) * np.array([0.52, 0.5]) + cen
    b.poly(hole, "beige", detail=0)
    # secondary: the blade's back line; fine: rivets and an etched line
    b.line([(0.06, -h0 + 0.025), (Lb * 0.85, -h0 + (h0 - h1) * 0.85 + 0.025)], "gray", detail=2, width=0.006)
    for k in range(2):
        b.poly(_ell(0.012, top + 0.06 + k * (h0 * 0.55), 0.012, 0.012, n=8), "gold", detail=2)
    _finish(b, tilt)


@category("axe", "tools")
def axe(b):
    """An axe: a long curved handle and a wedge head with a broad curved cutting edge (sometimes double-bit)."""
    L = b.uniform("handle_length", 0.6, 0.85)
    bl = b.uniform("blade_length", 0.16, 0.26)      # eye to cutting edge
    bh = b.uniform("blade_height", 0.18, 0.3)       # length of the cutting edge
    beard = b.uniform("beard", 0.45, 0.75)          # share of the edge below the eye's top
    double = b.attr("double_bit", int(b.rng.random() < 0.25))
    tilt = b.uniform("tilt", 0.35, 0.95)
    col = b.choice("color", ["red", "silver", "darkgray", "black", "orange"])
    rng = b.rng
    hw = 0.045 + 0.015 * rng.random()
    he = 0.1 + 0.03 * rng.random()                  # eye height
    # handle: a gently curved tapering band from under the head, with a swelled knob
    s = _lin(8)
    curve = rng.uniform(0.02, 0.05)
    mx = curve * np.sin(np.pi * s) * (1 - 0.6 * s)
    my = he + L * s
    w = hw / 2 * (0.9 + 0.1 * s)
    w[-2:] *= 1.35
    b.poly(np.concatenate([np.stack([mx - w, my], 1), np.stack([mx + w, my], 1)[::-1]]), "wood", detail=0)
    # head
    e1 = hw * 0.75
    up = bh * (1 - beard) - he * 0.2
    dn = bh * beard - he * 0.8
    bulge = bh * rng.uniform(0.12, 0.22)

    def side(sd):
        """The blade on side ``sd`` (+1 right, -1 left): top edge, convex cutting edge, concave beard."""
        top = [(sd * (e1 + (bl - e1) * k), -up * k * k) for k in (0.35, 0.7, 1.0)]
        cy0, ry0 = (-up + he + dn) / 2, (he + dn + up) / 2
        edge = _ell(sd * bl, cy0, sd * bulge, ry0, n=9, a0=-math.pi / 2, a1=math.pi / 2)
        bot = [(sd * (e1 + (bl - e1) * k), he + dn * k ** 1.6) for k in (0.75, 0.45, 0.2)]
        return np.concatenate([top, edge, bot])

    right = side(1)
    if double:
        left = side(-1)[::-1]
    else:
        pl = 0.05 + 0.02 * rng.random()
        left = np.array([(-e1 - pl, he - 0.012), (-e1 - pl, 0.012)])
    head = np.concatenate([[(-e1, 0.0), (e1, 0.0)], right, [(e1, he), (-e1, he)], left])
    b.poly(head, col, detail=0)
    # secondary: the bevel line along the edge(s); fine: the eye wedge and a grain line
    for sd in ((1, -1) if double else (1,)):
        cy0, ry0 = (-up + he + dn) / 2, (he + dn + up) / 2 * 0.85
        b.line(_ell(sd * (bl - 0.035), cy0, sd * bulge * 0.8, ry0, n=7, a0=-math.pi / 2.4, a1=math.pi / 2.4),
               "lightgray", detail=1, width=0.01)
    b.line([(-e1 * 0.5, he * 0.2), (e1 * 0.5, he * 0.8)], "darkgray", detail=2, width=0.006)
    b.line([(mx[2], my[2]), (mx[5] + 0.005, my[5])], "brown", detail=2, width=0.006)
    _finish(b, tilt)


def _head_arc(cx, cy, r, a0, a1, slot=None, n=14):
    """Points of a wrench head circle from angle ``a0`` to ``a1`` (increasing); ``slot = (phi, s, depth)``
    cuts an open jaw of half-width ``s`` pointing at angle ``phi`` (which must lie in ``(a0, a1)``)."""
    if slot is None:
        return _arc_pts(cx, cy, r, a0, a1, n)
    phi, s, depth = slot
    al = np.arcsin(min(s / r, 0.95))
    p1 = _arc_pts(cx, cy, r, a0, phi - al, max(3, int(n * (phi - al - a0) / (a1 - a0)) + 2))
    p2 = _arc_pts(cx, cy, r, phi + al, a1, max(3, int(n * (a1 - phi - al) / (a1 - a0)) + 2))
    # slot in jaw coordinates (x' along phi): in along -s edge, round bottom, out along +s edge
    xo = np.sqrt(r * r - s * s)
    tc, ts = _unit(7, -math.pi / 2, -3 * math.pi / 2)
    loc = np.concatenate([[(xo, -s)], _xy(depth + s * 0.9 * tc, s * ts), [(xo, s)]])
    cp, sp = math.cos(phi), math.sin(phi)
    slot_pts = _xy(cx + cp * loc[:, 0] - sp * loc[:, 1], cy + sp * loc[:, 0] + cp * loc[:, 1])
    return np.concatenate([p1, slot_pts, p2])


@category("wrench", "tools")
def wrench(b):
    """A spanner: a flat bar with an angled open jaw at one end and a ring or a smaller jaw at the other."""
    L = b.uniform("length", 0.55, 0.75)
    w = b.uniform("bar_width", 0.055, 0.085)
    R = b.uniform("head_size", 1.35, 1.9) * w
    jaw = b.uniform("jaw_angle", 0.15, 0.5)
    end = b.choice("end", ["ring", "open"])
    tilt = b.uniform("tilt", -1.0, -0.35)
    col = b.choice("color", ["silver", "gray", "darkgray", "blue", "red"])
    rng = b.rng
    hx = L / 2
    beta = np.arcsin(w / 2 / R)
    R2 = R * (0.85 if end == "ring" else 0.8)
    beta2 = np.arcsin(min(w / 2 / R2, 0.9))
    # one outline: left head (bottom junction -> round the left -> top junction), bar top, right head, bar bottom
    if end == "ring":
        left = _head_arc(-hx, 0.0, R2, beta2, _TAU - beta2, n=16)
    else:
        left = _head_arc(-hx, 0.0, R2, beta2, _TAU - beta2, slot=(np.pi - jaw, R2 * 0.45, -R2 * 0.15), n=16)
    right = _head_arc(hx, 0.0, R, np.pi + beta, 3 * np.pi - beta, slot=(_TAU + jaw, R * 0.5, -R * 0.12), n=18)
    b.poly(np.concatenate([left, right]), col, detail=0)
    if end == "ring":
        hc, hs = _unit(12)
        rr = R2 * 0.55 * _CACHE.setdefault("hex", np.where(np.arange(12) % 2 == 0, 1.0, 0.88))
        b.poly(_xy(-hx + rr * hc, rr * hs), "beige", detail=0)
    # secondary: the recessed groove along the bar; fine: a size stamp
    g0, g1 = -hx + R2 * 1.15, hx - R * 1.15
    b.poly(_smooth([(g0, -w * 0.22), (g1, -w * 0.22), (g1, w * 0.22), (g0, w * 0.22)], 1), "gray", detail=1)
    xm = (g0 + g1) / 2
    b.line([(xm - 0.03, 0.0), (xm - 0.005, 0.0)], "black", detail=2, width=0.006)
    b.line([(xm + 0.005, -w * 0.1), (xm + 0.03, w * 0.1)], "black", detail=2, width=0.006)
    _finish(b, tilt)


@category("screwdriver", "tools")
def screwdriver(b):
    """A screwdriver: a fat fluted handle, a ferrule, a long thin shaft and a flat or cross tip."""
    hl = b.uniform("handle_length", 0.22, 0.34)
    hw = b.uniform("handle_width", 0.085, 0.13)
    sl = b.uniform("shaft_length", 0.3, 0.5)
    tip = b.choice("tip", ["flat", "phillips"])
    grooves = b.integer("grooves", 2, 4)
    tilt = b.uniform("tilt", 0.45, 1.05)
    col = b.choice("color", ["red", "yellow", "blue", "black", "orange", "green"])
    rng = b.rng
    # handle (bottom end at y=0, ferrule at y=-hl): rounded butt, slight waist, collar
    y0, y1 = 0.0, -hl
    half = hw / 2
    hp = [(-half * 0.8, y0), (-half, y0 - hl * 0.12), (-half * 0.92, y0 - hl * 0.55), (-half, y1 + hl * 0.14),
          (-half * 0.7, y1), (half * 0.7, y1), (half, y1 + hl * 0.14), (half * 0.92, y0 - hl * 0.55),
          (half, y0 - hl * 0.12), (half * 0.8, y0)]
    b.poly(_smooth(hp, 1), col, detail=0)
    # ferrule and shaft
    fw, fl = half * 0.55, 0.03 + 0.015 * rng.random()
    b.rect(-fw, y1 - fl, fw, y1 + 0.005, "silver", detail=1)
    sw = 0.012 + 0.006 * rng.random()
    ys = y1 - fl - sl
    b.rect(-sw, ys, sw, y1 - fl, "silver", detail=0)
    # tip
    if tip == "flat":
        b.poly([(-sw, ys), (sw, ys), (sw * 1.6, ys - 0.035), (sw * 1.6, ys - 0.045), (-sw * 1.6, ys - 0.045),
                (-sw * 1.6, ys - 0.035)], "silver", detail=0)
    else:
        b.poly([(-sw, ys), (sw, ys), (sw * 0.9, ys - 0.03), (0.0, ys - 0.055), (-sw * 0.9, ys - 0.03)],
               "silver", detail=0)
        b.line([(0.0, ys - 0.05), (0.0, ys - 0.005)], "darkgray", detail=2, width=0.005)
    # fine: flutes on the handle
    xs = np.linspace(-half * 0.55, half * 0.55, grooves)
    for x in xs:
        b.line([(x, y0 - hl * 0.15), (x, y1 + hl * 0.2)], "darkgray", detail=2, width=0.008)
    b.line([(-half * 0.9, y1 + hl * 0.14), (half * 0.9, y1 + hl * 0.14)], "darkgray", detail=1, width=0.008)
    _finish(b, tilt)


@category("shovel", "tools")
def shovel(b):
    """A shovel: a long shaft with a D, T or plain grip and a pointed, rounded spade blade with a socket."""
    sl = b.uniform("shaft_length", 0.45, 0.65)
    bw = b.uniform("blade_width", 0.2, 0.3)
    bl = b.uniform("blade_length", 0.22, 0.32)
    point = b.uniform("point", 0.0, 1.0)            # 0 = square-ish, 1 = pointed
    grip = b.choice("grip", ["D", "T", "plain"])
    tilt = b.uniform("tilt", 0.35, 0.95)
    col = b.choice("color", ["silver", "gray", "red", "black", "green", "blue"])
    rng = b.rng
    sw = 0.028 + 0.01 * rng.random()
    y_top, y_blade = 0.0, sl
    # shaft
    b.rect(-sw / 2, y_top, sw / 2, y_blade - 0.04, "wood", detail=0)
    # grip
    if grip == "D":
        gw, gh = 0.075 + 0.02 * rng.random(), 0.1
        outer = [(-sw / 2, y_top + 0.005), (-gw, y_top - 0.02), (-gw, y_top - gh), (gw, y_top - gh),
                 (gw, y_top - 0.02), (sw / 2, y_top + 0.005)]
        b.poly(_smooth(outer, 2), "black" if col != "black" else "darkgray", detail=0)
        b.poly(_smooth([(-gw + 0.025, y_top - 0.03), (gw - 0.025, y_top - 0.03), (gw - 0.025, y_top - gh + 0.025),
                        (-gw + 0.025, y_top - gh + 0.025)], 2), "beige", detail=0)
    elif grip == "T":
        gw = 0.08 + 0.02 * rng.random()
        b.poly(_smooth([(-gw, y_top - 0.035), (gw, y_top - 0.035), (gw, y_top + 0.005), (-gw, y_top + 0.005)], 1),
               "wood", detail=0)
    else:
        b.poly(_ell(0.0, y_top, sw * 0.7, 0.015, n=10), "wood", detail=1)
    # blade: socket neck, rolled top step, curved sides to a point
    yt = y_blade
    s = _lin(9)
    half = bw / 2
    xr = half * (1 - (s ** (2.2 - point)) * (0.35 + 0.65 * point))
    xr = np.maximum(xr, 0.0)
    yy = yt + bl * s
    tip_y = yt + bl * (1 + 0.12 * point)
    right = np.stack([xr, yy], 1)
    left = np.stack([-xr, yy], 1)[::-1]
    blade = np.concatenate([[(sw * 0.8, yt - 0.06), (sw * 1.3, yt - 0.01)], right, [(0.0, tip_y)], left,
                            [(-sw * 1.3, yt - 0.01), (-sw * 0.8, yt - 0.06)]])
    b.poly(blade, col, detail=0)
    # secondary: the foot step along the top; fine: the centre ridge
    b.line([(-half * 0.95, yt + 0.018), (-sw * 1.2, yt + 0.012), (sw * 1.2, yt + 0.012), (half * 0.95, yt + 0.018)],
           "darkgray", detail=1, width=0.01)
    b.line([(0.0, yt + 0.03), (0.0, yt + bl * 0.75)], "darkgray", detail=2, width=0.007)
    _finish(b, tilt)


@category("ladder", "tools")
def ladder(b):
    """A ladder: two long rails, slightly converging upward, joined by evenly spaced rungs."""
    h = b.uniform("height", 0.7, 0.85)
    w = b.uniform("width", 0.22, 0.38)
    taper = b.uniform("taper", 0.7, 1.0)             # top width / bottom width
    rungs = b.integer("rungs", 4, 9)
    lean = b.uniform("lean", -0.3, 0.3)
    col = b.choice("color", ["wood", "silver", "orange", "yellow", "red"])
    rng = b.rng
    rt = 0.025 + 0.015 * rng.random()                # rail thickness
    yt, yb = -h / 2, h / 2
    top_ext = (0.02 + 0.06 * rng.random()) * h

    def xin(y, sd):
        """Inner edge x of rail ``sd`` at height ``y``."""
        f = (yb - y) / h
        return sd * (w / 2 * (1 - (1 - taper) * f))

    ys = yb - (h - top_ext) * (np.arange(rungs) + 0.6) / (rungs + 0.1)
    rh = 0.018 + 0.008 * rng.random()
    for y in ys:
        b.poly([(xin(y - rh / 2, -1), y - rh / 2), (xin(y - rh / 2, 1), y - rh / 2), (xin(y + rh / 2, 1), y + rh / 2),
                (xin(y + rh / 2, -1), y + rh / 2)], col, detail=0)
    for sd in (-1, 1):
        b.poly([(xin(yt, sd), yt), (xin(yt, sd) + sd * rt, yt), (xin(yb, sd) + sd * rt, yb), (xin(yb, sd), yb)],
               col, detail=0)
        # secondary: rubber feet; fine: rung bolts
        b.rect(xin(yb, sd) - rt * 0.2 if sd > 0 else xin(yb, sd) - rt * 1.2, yb - 0.02,
               xin(yb, sd) + rt * 1.2 if sd > 0 else xin(yb, sd) + rt * 0.2, yb + 0.012, "black", detail=1)
    for y in ys[:: max(1, rungs // 3)]:
        for sd in (-1, 1):
            b.poly(_ell(xin(y, sd) + sd * rt / 2, y, rt * 0.22, rt * 0.22, n=6), "darkgray", detail=2)
    _finish(b, lean)


@category("scissors", "tools")
def scissors(b):
    """Scissors: two long pointed blades crossing at a pivot screw, two finger loops behind."""
    opening = b.uniform("opening", 0.12, 0.45)       # half-angle between the blades
    blen = b.uniform("blade_length", 0.38, 0.52)
    loop = b.uniform("loop_size", 0.07, 0.1)
    ratio = b.uniform("loop_ratio", 1.0, 1.45)       # big loop / small loop
    tilt = b.uniform("tilt", -1.1, -0.3)
    col = b.choice("color", ["red", "black", "blue", "orange", "green", "purple"])
    rng = b.rng
    bw = 0.045 + 0.015 * rng.random()                # blade width at the pivot
    hlen = loop * 1.6 + 0.05                         # pivot to loop centre
    for k, sd in enumerate((1, -1)):
        ab = sd * opening                            # blade direction (+x forward)
        ah = np.pi + ab                              # its handle goes the opposite way, on the other side
        cb, sb = np.cos(ab), np.sin(ab)
        # blade in its own frame: cutting edge straight along y'=0, back edge curved, from behind the pivot
        u = -0.03 + (blen + 0.03) * _lin(8)
        back = sd * bw * (1 - np.clip(u, 0, None) / blen) ** 0.8
        edge = np.stack([u, -0.004 * sd * np.ones_like(u)], 1)
        bk = np.stack([u, back], 1)[::-1]
        loc = np.concatenate([edge, bk])
        pts = np.stack([cb * loc[:, 0] - sb * loc[:, 1], sb * loc[:, 0] + cb * loc[:, 1]], 1)
        b.poly(pts, "silver", detail=0)
        # shank and loop
        r = loop * (ratio if k == 0 else 1.0)
        dist = hlen + r - loop
        off = max(0.0, r * 1.05 - dist * np.sin(opening))   # bend the handles apart so the loops clear
        lx, ly = dist * np.cos(ah), dist * np.sin(ah) - sd * off
        ea = np.arctan2(ly, lx)
        ring = _ell(lx, ly, r * 1.25, r * 0.9, ea, n=20)
        d = np.hypot(lx, ly)
        f = (d - r * 1.15) / d
        b.segment_rect((0.02 * lx / d, 0.02 * ly / d), (lx * f, ly * f), bw * 0.8, col, detail=0)
        b.poly(ring, col, detail=0)
        b.poly((ring - (lx, ly)) * 0.6 + (lx, ly), "beige", detail=0)
    # secondary: pivot screw; fine: screw slot
    b.poly(_ell(0.0, 0.0, 0.018, 0.018, n=10), "darkgray", detail=1)
    b.line([(-0.01, -0.004), (0.01, 0.004)], "black", detail=2, width=0.004)
    _finish(b, tilt)
