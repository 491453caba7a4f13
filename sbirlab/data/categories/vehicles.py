"""Drawing programs: vehicles.

Side views, front to the right (the world mirrors half of the instances). y goes down.
"""
from __future__ import annotations

import numpy as np

from ._registry import category


from ._circle_kit import _circle, _ellipse, _unit


# -- helpers ----------------------------------------------------------------------------------
_QUARTER: dict[int, list] = {}


def _rrect_pts(x0, y0, x1, y1, r, n=4):
    """Points of a rounded rectangle (corner radius ``r``)."""
    r = max(1e-4, min(r, (x1 - x0) / 2, (y1 - y0) / 2))
    q = _QUARTER.get(n)
    if q is None:
        q = _QUARTER[n] = []
        for a0 in (-np.pi / 2, 0.0, np.pi / 2, np.pi):
            t = np.linspace(a0, a0 + np.pi / 2, n)
            q.append(np.stack([np.cos(t), np.sin(t)], 1))
    cs = ((x1 - r, y0 + r), (x1 - r, y1 - r), (x0 + r, y1 - r), (x0 + r, y0 + r))
    return np.concatenate([u * r + c for u, c in zip(q, cs)])


def _ring_pts(cx, cy, r, n=22):
    u = _unit(n)
    return np.concatenate([u, u[:1]]) * r + (cx, cy)


def _wheel(b, cx, cy, r, hub="silver", hub_detail=1):
    _circle(b, cx, cy, r, "black", detail=0)
    _circle(b, cx, cy, r * 0.48, hub, detail=hub_detail, n=14)


def _lerp(p, q, t):
    return (p[0] + (q[0] - p[0]) * t, p[1] + (q[1] - p[1]) * t)


# -- car ----------------------------------------------------------------------------------------
@category("car", "vehicles")
def car(b):
    L = b.uniform("length", 0.62, 0.8)
    bh = b.uniform("body_height", 0.11, 0.17)
    ch = b.uniform("cabin_height", 0.09, 0.15)
    cpos = b.uniform("cabin_pos", 0.4, 0.55)
    style = b.choice("style", ["sedan", "hatchback", "coupe"])
    wr = b.uniform("wheel_size", 0.06, 0.085)
    col = b.choice("color", ["red", "blue", "yellow", "silver", "black", "white", "green", "orange"])
    x0, x1 = 0.5 - L / 2, 0.5 + L / 2
    yb = 0.5 + (bh + ch) / 2 + 0.03
    yt, yr = yb - bh, yb - bh - ch
    ws = ch * 0.9                                   # windshield run
    c = x0 + L * (cpos + 0.24)                      # cabin front foot
    if style == "sedan":
        a, rs = x0 + L * (cpos - 0.26), ch * 0.7
    elif style == "hatchback":
        a, rs = x0 + 0.01, ch * 0.35
    else:                                           # coupe: long fastback
        a, rs = x0 + L * 0.08, max(ch * 1.8, L * (cpos - 0.05))
    a = max(a, x0 + 0.005)
    rs = min(rs, (c - ws - a) * 0.75)
    body = [(x0 + 0.015, yb), (x0, yb - 0.02), (x0, yt + 0.012), (x0 + 0.012, yt), (a, yt),
            (a + rs, yr), (c - ws, yr), (c, yt), (x1 - 0.05, yt + bh * 0.08), (x1 - 0.005, yt + bh * 0.38),
            (x1, yb - 0.025), (x1 - 0.02, yb)]
    b.poly(body, col, detail=0)
    # side windows, split by the B pillar
    top, bot = yr + 0.014, yt - 0.01
    fa = (bot - top) / ch
    lx0, lx1 = a + rs * (1 - fa) + 0.012 + rs * 0.05, c - ws * (1 - fa) - 0.012
    rx0, rx1 = a + rs + 0.01, c - ws - 0.006
    mid = (lx0 + lx1) / 2 + 0.01
    b.poly([(lx0, bot), (rx0, top), (mid - 0.008, top), (mid - 0.008, bot)], "sky", detail=1)
    b.poly([(mid + 0.008, bot), (mid + 0.008, top), (rx1, top), (lx1, bot)], "sky", detail=1)
    # door line, handle, lights
    b.line([(mid, yt), (mid, yb - 0.02)], "darkgray", detail=2, width=0.008)
    b.line([(mid + 0.03, yt + 0.025), (mid + 0.055, yt + 0.025)], "darkgray", detail=2, width=0.01)
    _ellipse(b, x1 - 0.018, yt + bh * 0.42, 0.016, 0.011, color="yellow", detail=2, n=10)
    b.rect(x0, yt + bh * 0.2, x0 + 0.015, yt + bh * 0.45, "darkred", detail=2)
    _wheel(b, x0 + L * 0.2, yb, wr)
    _wheel(b, x1 - L * 0.18, yb, wr)


# -- bicycle ------------------------------------------------------------------------------------
@category("bicycle", "vehicles")
def bicycle(b):
    wr = b.uniform("wheel_size", 0.13, 0.17)
    wb = b.uniform("wheelbase", 0.34, 0.44)
    frame = b.choice("frame", ["diamond", "step_through"])
    seat = b.uniform("seat_height", 0.04, 0.1)
    bars = b.choice("handlebar", ["upright", "drop", "flat"])
    col = b.choice("color", ["red", "blue", "black", "green", "yellow", "silver", "orange", "teal"])
    yw = 0.78 - wr
    R, F = (0.5 - wb / 2, yw), (0.5 + wb / 2, yw)
    bb = (R[0] + wb * 0.45, yw + 0.015)
    st = (R[0] + wb * 0.3, yw - wr * 1.12)
    ht = (F[0] - wb * 0.13, yw - wr * 1.12)
    hl = _lerp(ht, F, 0.3)
    fw = 0.02
    for C in (R, F):
        b.line(_ring_pts(*C, wr), "black", detail=0, width=0.024)
    b.line([R, st, bb, R], col, detail=0, width=fw)             # rear triangle + seat tube
    if frame == "diamond":
        b.line([st, ht], col, detail=0, width=fw)
        b.line([bb, hl], col, detail=0, width=fw)
    else:
        low = _lerp(bb, st, 0.35)
        pts = [_lerp(low, hl, t) for t in np.linspace(0, 1, 6)]
        pts = [(x, y + 0.06 * np.sin(np.pi * t)) for (x, y), t in zip(pts, np.linspace(0, 1, 6))]
        b.line([bb, hl], col, detail=0, width=fw)
        b.line(pts, col, detail=1, width=fw)
    b.line([(ht[0] - 0.006, ht[1] - 0.02), F], col, detail=0, width=fw)   # fork + head tube
    # seat post and saddle
    sp = (st[0] - 0.012, st[1] - seat)
    b.line([st, sp], "darkgray", detail=0, width=0.015)
    b.poly([(sp[0] - 0.045, sp[1] - 0.012), (sp[0] + 0.035, sp[1] - 0.014), (sp[0] + 0.03, sp[1] + 0.006),
            (sp[0] - 0.04, sp[1] + 0.008)], "black", detail=0)
    # stem + handlebar
    s = (ht[0] - 0.012, ht[1] - 0.07)
    if bars == "upright":
        hb = [(ht[0] - 0.006, ht[1] - 0.02), s, (s[0] - 0.07, s[1] - 0.005), (s[0] - 0.085, s[1] + 0.012)]
    elif bars == "drop":
        hb = [(ht[0] - 0.006, ht[1] - 0.02), (s[0] + 0.02, s[1] + 0.01), (s[0] + 0.05, s[1] + 0.015),
              (s[0] + 0.06, s[1] + 0.04), (s[0] + 0.045, s[1] + 0.06), (s[0] + 0.025, s[1] + 0.055)]
    else:
        hb = [(ht[0] - 0.006, ht[1] - 0.02), (s[0] + 0.01, s[1] + 0.01), (s[0] + 0.06, s[1] + 0.005)]
    b.line(hb, "darkgray", detail=0, width=0.016)
    # chainring, hubs, spokes, pedal
    b.line(_ring_pts(*bb, 0.035, 14), "darkgray", detail=1, width=0.012)
    b.line([(bb[0] + 0.02, bb[1] - 0.04), (bb[0] - 0.02, bb[1] + 0.04)], "black", detail=2, width=0.012)
    for C in (R, F):
        _circle(b, *C, 0.015, "silver", detail=2, n=8)
        b.line([(C[0] - wr * 0.9, C[1]), (C[0] + wr * 0.9, C[1]), C, (C[0], C[1] - wr * 0.9),
                (C[0], C[1] + wr * 0.9)], "lightgray", detail=2, width=0.005)


# -- bus -----------------------------------------------------------------------------------------
@category("bus", "vehicles")
def bus(b):
    L = b.uniform("length", 0.72, 0.82)
    H = b.uniform("height", 0.24, 0.3)
    decks = b.integer("decks", 1, 2)
    nwin = b.integer("windows", 3, 5)
    door = b.choice("door", ["front", "middle"])
    wr = b.uniform("wheel_size", 0.055, 0.072)
    col = b.choice("color", ["yellow", "red", "blue", "green", "white", "orange"])
    if decks == 2:
        H *= 1.6
    x0, x1 = 0.5 - L / 2, 0.5 + L / 2
    yb = 0.5 + H / 2 + 0.02
    yt = yb - H
    b.poly(_rrect_pts(x0, yt, x1, yb, 0.035), col, detail=0)
    row = 0.11 if decks == 1 else 0.095
    # front windshield (the front end of the bus)
    b.poly([(x1 - 0.03, yt + 0.02), (x1 - 0.006, yt + 0.03), (x1 - 0.004, yb - H * (0.55 if decks == 1 else 0.3)),
            (x1 - 0.03, yb - H * (0.55 if decks == 1 else 0.3))], "sky", detail=1)
    # door
    wy0 = yb - 0.035 - row - 0.05 if decks == 1 else yb - 0.04 - row - 0.03
    dw = 0.065
    dx0 = x1 - 0.045 - dw if door == "front" else 0.5 + 0.02
    b.rect(dx0, wy0, dx0 + dw, yb - 0.012, "darkgray", detail=1)
    b.line([(dx0 + dw / 2, wy0 + 0.01), (dx0 + dw / 2, yb - 0.02)], "lightgray", detail=2, width=0.006)
    # windows rows
    free = [(x0 + 0.025, dx0 - 0.015), (dx0 + dw + 0.015, x1 - 0.04)]
    free = [(a, c) for a, c in free if c - a > 0.05]
    rows = [(wy0, wy0 + row)] if decks == 1 else [(wy0, wy0 + row), (yt + 0.03, yt + 0.03 + row)]
    for ri, (ya, yc) in enumerate(rows):
        segs = free if ri == 0 else [(x0 + 0.025, x1 - 0.04)]
        total = sum(c - a for a, c in segs)
        n_all = nwin if ri == 0 else nwin + 1
        for a, c in segs:
            k = max(1, int(round(n_all * (c - a) / total)))
            gap = 0.014
            w = (c - a - gap * (k - 1)) / k
            for i in range(k):
                xa = a + i * (w + gap)
                b.rect(xa, ya, xa + w, yc, "sky", detail=1)
    b.line([(x0 + 0.01, yb - H * 0.17 / (decks * 0.8)), (x1 - 0.01, yb - H * 0.17 / (decks * 0.8))],
           "white" if col != "white" else "red", detail=2, width=0.012)
    _ellipse(b, x1 - 0.015, yb - 0.04, 0.01, 0.014, color="yellow", detail=2, n=8)
    _wheel(b, x0 + L * 0.2, yb, wr)
    _wheel(b, x1 - L * (0.27 if door == "front" else 0.15), yb, wr)


# -- train (steam locomotive + wagons) ---------------------------------------------------------------
@category("train", "vehicles")
def train(b):
    cars = b.integer("cars", 1, 2)
    bh = b.uniform("boiler_height", 0.1, 0.14)
    chim = b.uniform("chimney", 0.05, 0.09)
    nw = b.integer("wheels", 2, 3)
    smoke = b.integer("smoke", 0, 2)
    col = b.choice("color", ["red", "green", "black", "blue", "darkred", "navy"])
    rail = 0.7
    X0, X1 = 0.08, 0.92
    Ll = (X1 - X0) * (0.5 if cars == 1 else 0.38)
    lx0, lx1 = X1 - Ll, X1
    wr = 0.04
    chassis_y = rail - wr * 1.5
    cab_w = Ll * 0.3
    cab_top = chassis_y - bh - 0.1
    # locomotive
    b.rect(lx0, chassis_y - 0.005, lx1 - 0.02, chassis_y + 0.025, "darkgray", detail=0)
    cxh = lx1 - Ll * 0.2
    b.poly([(cxh - 0.022, chassis_y - bh + 0.01), (cxh - 0.032, chassis_y - bh - chim),
            (cxh + 0.032, chassis_y - bh - chim), (cxh + 0.022, chassis_y - bh + 0.01)], "black", detail=0)
    b.poly(_rrect_pts(lx0 + cab_w - 0.01, chassis_y - bh, lx1 - 0.02, chassis_y, 0.02), col, detail=0)
    b.poly([(lx0, chassis_y), (lx0, cab_top), (lx0 - 0.014, cab_top), (lx0 - 0.014, cab_top - 0.016),
            (lx0 + cab_w * 0.5, cab_top - 0.028), (lx0 + cab_w + 0.014, cab_top - 0.016),
            (lx0 + cab_w + 0.014, cab_top), (lx0 + cab_w, cab_top), (lx0 + cab_w, chassis_y)], col, detail=0)
    b.rect(lx0 + cab_w * 0.25, cab_top + 0.025, lx0 + cab_w * 0.75, cab_top + 0.025 + 0.045, "cream", detail=1)
    _ellipse(b, lx0 + cab_w + (Ll - cab_w) * 0.38, chassis_y - bh, 0.03, 0.025, color="gold", detail=1, n=14)
    b.tri((lx1 - 0.035, chassis_y + 0.02), (lx1 + 0.005, rail), (lx1 - 0.035, rail), "darkgray", detail=1)
    span = Ll - 0.08
    xs = [lx0 + 0.045 + span * (i + 0.5) / nw for i in range(nw)]
    for x in xs:
        _wheel(b, x, rail - wr, wr, hub="red", hub_detail=2)
    for k in range(smoke):
        r = 0.028 + 0.012 * k
        _circle(b, cxh - 0.03 - 0.06 * k, chassis_y - bh - chim - 0.03 - 0.03 * k, r, "lightgray", detail=1, n=14)
    # wagons
    cw = (lx0 - X0 - 0.02 * cars) / cars
    cr = 0.03
    for i in range(cars):
        cx1 = lx0 - 0.02 - i * (cw + 0.02)
        cx0 = cx1 - cw
        top = chassis_y - bh - 0.06
        b.poly([(cx0, rail - cr * 1.4), (cx0, top + 0.015), (cx0 - 0.008, top + 0.015), (cx0 + 0.01, top),
                (cx1 - 0.01, top), (cx1 + 0.008, top + 0.015), (cx1, top + 0.015), (cx1, rail - cr * 1.4)],
               "brown" if col == "black" else col, detail=0)
        k = 2 if cw < 0.25 else 3
        ww = (cw - 0.02 - 0.015 * (k + 1)) / k
        for j in range(k):
            xa = cx0 + 0.01 + 0.015 + j * (ww + 0.015)
            b.rect(xa, top + 0.03, xa + ww, top + 0.075, "cream", detail=2)
        for x in (cx0 + cw * 0.2, cx1 - cw * 0.2):
            _circle(b, x, rail - cr, cr, "black", detail=0, n=16)
    b.line([(X0 - 0.01, rail + 0.004), (X1 + 0.01, rail + 0.004)], "darkgray", detail=1, width=0.012)


# -- truck ---------------------------------------------------------------------------------------
@category("truck", "vehicles")
def truck(b):
    kind = b.choice("kind", ["box", "tanker", "dump"])
    L = b.uniform("length", 0.7, 0.82)
    cargo_h = b.uniform("cargo_height", 0.2, 0.3)
    cab_h = b.uniform("cab_height", 0.18, 0.24)
    axles = b.integer("axles", 2, 3)
    wr = b.uniform("wheel_size", 0.055, 0.072)
    col = b.choice("color", ["red", "blue", "white", "yellow", "orange", "green"])
    x0, x1 = 0.5 - L / 2, 0.5 + L / 2
    yb = 0.5 + max(cargo_h, cab_h) / 2 + 0.04
    cl = 0.17
    cx0 = x1 - cl
    b.rect(x0 + 0.01, yb - 0.035, x1 - 0.02, yb, "darkgray", detail=0)           # chassis
    cb = yb - 0.035                                                                 # cargo bottom
    gx1 = cx0 - 0.02
    if kind == "box":
        b.rect(x0, cb - cargo_h, gx1, cb, "white" if col != "white" else "lightgray", detail=0)
        for t in (0.33, 0.66):
            x = x0 + (gx1 - x0) * t
            b.line([(x, cb - cargo_h + 0.01), (x, cb - 0.01)], "gray", detail=2, width=0.008)
        b.rect(x0 + 0.03, cb - cargo_h * 0.7, gx1 - 0.03, cb - cargo_h * 0.45, col, detail=2)
    elif kind == "tanker":
        th = cargo_h * 0.8
        b.poly(_rrect_pts(x0, cb - th, gx1, cb - 0.005, th / 2, n=6), "silver", detail=0)
        b.rect(x0 + (gx1 - x0) * 0.45, cb - th - 0.025, x0 + (gx1 - x0) * 0.55, cb - th + 0.005, "gray", detail=1)
        b.line([(x0 + th * 0.4, cb - th * 0.5), (gx1 - th * 0.4, cb - th * 0.5)], col, detail=2, width=0.014)
    else:                                                                           # dump bed + load
        b.poly([(x0 + 0.05, cb - cargo_h * 0.95), (x0 + 0.03, cb - cargo_h * 1.1),
                (x0 + (gx1 - x0) * 0.5, cb - cargo_h * 1.22), (gx1 - 0.03, cb - cargo_h * 1.05),
                (gx1 - 0.02, cb - cargo_h * 0.95)], "tan", detail=1)
        b.poly([(x0, cb - cargo_h), (gx1, cb - cargo_h), (gx1 - 0.02, cb), (x0 + 0.04, cb)], col, detail=0)
        b.line([(x0 + 0.03, cb - cargo_h * 0.5), (gx1 - 0.02, cb - cargo_h * 0.5)], "darkgray", detail=2,
               width=0.008)
    # cab
    ct = yb - 0.035 - cab_h
    b.poly([(cx0, cb), (cx0, ct + 0.01), (cx0 + 0.01, ct), (x1 - 0.05, ct), (x1 - 0.01, ct + cab_h * 0.45),
            (x1, ct + cab_h * 0.5), (x1, cb)], col, detail=0)
    b.poly([(cx0 + 0.04, ct + 0.025), (x1 - 0.058, ct + 0.025), (x1 - 0.025, ct + cab_h * 0.42),
            (cx0 + 0.04, ct + cab_h * 0.42)], "sky", detail=1)
    b.line([(cx0 + 0.03, ct + cab_h * 0.48), (cx0 + 0.03, cb - 0.005)], "darkgray", detail=2, width=0.007)
    b.rect(x1 - 0.018, cb - 0.045, x1, cb - 0.02, "yellow", detail=2)
    # wheels
    _wheel(b, x1 - cl * 0.45, yb, wr)
    rx = x0 + 0.1
    _wheel(b, rx, yb, wr)
    if axles == 3:
        _wheel(b, rx + 2 * wr + 0.015, yb, wr)


# -- airplane ---------------------------------------------------------------------------------------
@category("airplane", "vehicles")
def airplane(b):
    L = b.uniform("length", 0.7, 0.82)
    fr = b.uniform("fuselage_height", 0.09, 0.12)
    span = b.uniform("wing_span", 0.18, 0.28)
    sweep = b.uniform("wing_sweep", 0.04, 0.14)
    tail_h = b.uniform("tail_height", 0.11, 0.17)
    engines = b.integer("engines", 0, 2)
    nwin = b.integer("windows", 4, 7)
    col = b.choice("color", ["white", "silver", "blue", "red", "sky", "yellow"])
    x0, x1 = 0.5 - L / 2, 0.5 + L / 2
    cy = 0.47
    top, bot = cy - fr / 2, cy + fr / 2
    wx = x0 + L * 0.45                                        # wing root leading edge
    wc = L * 0.2                                              # root chord
    # far wing (behind the fuselage, pointing up-back)
    b.poly([(wx + wc * 0.6, cy), (wx + wc * 0.05, cy), (wx - sweep * 0.6, top - span * 0.4),
            (wx - sweep * 0.6 + wc * 0.3, top - span * 0.4)], "gray" if col != "gray" else "silver", detail=0)
    # tail fin
    b.poly([(x0 + 0.01, top + 0.01), (x0 - 0.005, top - tail_h), (x0 + tail_h * 0.45, top - tail_h),
            (x0 + L * 0.2, top + 0.01)], col, detail=0)
    # fuselage
    nx = x1 - fr * 0.9
    t = np.linspace(-np.pi / 2, np.pi / 2, 9)
    nose = np.stack([nx + fr * 0.9 * np.cos(t), cy + fr / 2 * np.sin(t)], 1)
    fus = [(x0, top)] + [tuple(p) for p in nose] + [(x0 + L * 0.28, bot), (x0, cy - fr * 0.2)]
    b.poly(fus, col, detail=0)
    # horizontal stabiliser (near side)
    b.poly([(x0 + L * 0.05, cy - fr * 0.25), (x0 + L * 0.15, cy - fr * 0.2), (x0 + L * 0.04, cy + fr * 0.45),
            (x0 - 0.005, cy + fr * 0.45)], col, detail=1)
    # near wing (pointing down-back, toward the viewer)
    tip = (wx - sweep, bot + span)
    wing = [(wx, cy + fr * 0.1), (wx + wc, cy + fr * 0.1), (tip[0] + wc * 0.35, tip[1]), tip]
    b.poly(wing, col, detail=0)
    for k in range(engines):
        p = _lerp(((wing[0][0] + wing[1][0]) / 2, wing[0][1]), (tip[0] + wc * 0.17, tip[1]), 0.35 + 0.35 * k)
        _ellipse(b, p[0] + 0.025, p[1] + 0.012, 0.042, 0.02, color="lightgray" if col != "silver" else "gray",
                  detail=1, n=12)
    # cockpit window and cabin windows
    b.poly([(x1 - fr * 0.75, cy - fr * 0.1), (x1 - fr * 0.55, top + fr * 0.12), (x1 - fr * 0.25, top + fr * 0.22),
            (x1 - fr * 0.2, cy - fr * 0.1)], "navy", detail=1)
    xs = np.linspace(x0 + L * 0.22, nx - fr * 0.3, nwin)
    for x in xs:
        _circle(b, x, cy - fr * 0.12, fr * 0.11, "sky", detail=2, n=8)
    b.line([(x0 + L * 0.12, cy + fr * 0.18), (nx + fr * 0.5, cy + fr * 0.18)],
           "blue" if col != "blue" else "red", detail=2, width=0.01)


# -- helicopter ---------------------------------------------------------------------------------------
@category("helicopter", "vehicles")
def helicopter(b):
    bl = b.uniform("cabin_length", 0.26, 0.34)
    bh = b.uniform("cabin_height", 0.17, 0.23)
    boom = b.uniform("tail_length", 0.26, 0.34)
    span = b.uniform("rotor_span", 0.55, 0.7)
    gear = b.choice("gear", ["skids", "wheels"])
    tilt = b.uniform("rotor_tilt", -0.05, 0.05)
    col = b.choice("color", ["red", "yellow", "blue", "green", "olive", "white", "black", "orange"])
    # horizontal extent relative to the cabin nose (x1 = 0): tail fin on the left, rotor tips either side
    rc_rel = -bl * 0.55
    left = min(rc_rel - span / 2, -bl - boom)
    right = max(rc_rel + span / 2, 0.0)
    x1 = 0.5 - (left + right) / 2
    x0 = x1 - bl
    cx, cy = (x0 + x1) / 2, 0.52
    # tail boom + fin + tail rotor
    tx = x0 - boom + 0.04
    b.poly([(x0 + 0.05, cy - bh * 0.3), (tx, cy - bh * 0.3), (tx, cy - bh * 0.13), (x0 + 0.05, cy + bh * 0.12)],
           col, detail=0)
    b.poly([(tx + 0.05, cy - bh * 0.25), (tx - 0.01, cy - bh * 0.3 - 0.1), (tx - 0.035, cy - bh * 0.3 - 0.1),
            (tx - 0.02, cy - bh * 0.13), (tx + 0.04, cy - bh * 0.13)], col, detail=0)
    trc = (tx - 0.005, cy - bh * 0.22)
    b.line([(trc[0] - 0.05, trc[1] - 0.03), (trc[0] + 0.05, trc[1] + 0.03)], "darkgray", detail=1, width=0.012)
    b.line([(trc[0] - 0.03, trc[1] + 0.05), (trc[0] + 0.03, trc[1] - 0.05)], "darkgray", detail=1, width=0.012)
    # engine housing, cabin
    b.poly(_rrect_pts(cx - bl * 0.32, cy - bh / 2 - 0.035, cx + bl * 0.12, cy - bh * 0.3, 0.015), "darkgray",
           detail=1)
    _ellipse(b, cx, cy, bl / 2, bh / 2, color=col, detail=0, n=30)
    t = np.linspace(-np.pi / 2, 0.25, 10)
    win = [(cx + bl / 2 * 0.93 * np.cos(a), cy + bh / 2 * 0.9 * np.sin(a)) for a in t] + [(cx + bl * 0.12, cy + bh * 0.1),
                                                                                      (cx + bl * 0.06, cy - bh * 0.44)]
    b.poly(win, "sky", detail=1)
    b.rect(cx - bl * 0.28, cy - bh * 0.3, cx - bl * 0.02, cy + bh * 0.12, "sky", detail=2)
    # rotor mast + rotor
    mt = cy - bh / 2 - 0.085
    b.line([(cx - bl * 0.05, cy - bh / 2 - 0.03), (cx - bl * 0.05, mt)], "darkgray", detail=0, width=0.016)
    rc = (cx - bl * 0.05, mt)
    dx, dy = np.cos(tilt) * span / 2, np.sin(tilt) * span / 2
    b.line([(rc[0] - dx, rc[1] - dy), (rc[0] + dx, rc[1] + dy)], "darkgray", detail=0, width=0.022)
    _circle(b, *rc, 0.014, "black", detail=2, n=8)
    # landing gear
    gy = cy + bh / 2 + 0.06
    if gear == "skids":
        for sx in (-0.25, 0.2):
            b.line([(cx + bl * sx, cy + bh * 0.4), (cx + bl * sx - 0.01, gy)], "darkgray", detail=0, width=0.012)
        b.line([(cx - bl * 0.55, gy), (cx + bl * 0.45, gy), (cx + bl * 0.55, gy - 0.025)], "darkgray", detail=0,
               width=0.016)
    else:
        for sx in (-0.25, 0.3):
            b.line([(cx + bl * sx, cy + bh * 0.4), (cx + bl * sx, gy - 0.02)], "darkgray", detail=0, width=0.012)
            _circle(b, cx + bl * sx, gy - 0.01, 0.025, "black", detail=0, n=12)


# -- sailboat ------------------------------------------------------------------------------------------
@category("sailboat", "vehicles")
def sailboat(b):
    hl = b.uniform("hull_length", 0.5, 0.68)
    sh = b.uniform("sail_height", 0.36, 0.5)
    mp = b.uniform("mast_pos", 0.45, 0.62)
    sails = b.integer("sails", 1, 2)
    hd = b.uniform("hull_depth", 0.07, 0.11)
    col = b.choice("color", ["white", "red", "blue", "navy", "wood", "yellow", "green"])
    yw = 0.76
    x0, x1 = 0.5 - hl / 2, 0.5 + hl / 2
    yd = yw - hd * 0.45
    ybot = yw + hd * 0.55
    mx = x0 + hl * mp
    mtop = yd - sh - 0.03
    boom = yd - 0.045
    sailc = "white" if col != "white" else "cream"
    # main sail (behind the mast, a slightly convex leech)
    foot = mx - 0.015 - min(hl * mp * 0.9, sh * 0.75)
    pts = [(mx - 0.012, mtop + 0.02)]
    for t in np.linspace(0.1, 0.9, 5):
        p = _lerp((mx - 0.012, mtop + 0.02), (foot, boom), t)
        pts.append((p[0] - 0.04 * np.sin(np.pi * t), p[1] - 0.01 * np.sin(np.pi * t)))
    pts += [(foot, boom), (mx - 0.012, boom)]
    b.poly(pts, sailc, detail=0)
    if sails == 2:
        b.poly([(mx + 0.012, mtop + 0.04), (x1 - 0.03, yd - 0.025), (mx + 0.012, yd - 0.025)], sailc, detail=0)
    b.line([(mx, yd), (mx, mtop)], "wood", detail=0, width=0.016)
    b.line([(foot - 0.01, boom + 0.006), (mx, boom + 0.006)], "wood", detail=1, width=0.012)
    b.tri((mx, mtop), (mx - 0.06, mtop + 0.015), (mx, mtop + 0.03), "red" if col != "red" else "yellow", detail=2)
    # hull
    b.poly([(x0, yd), (x1 + 0.02, yd - 0.02), (x1 - hl * 0.14, ybot - 0.01), (x0 + hl * 0.5, ybot),
            (x0 + 0.035, ybot - 0.01)], col, detail=0)
    b.line([(x0 + 0.02, yd + hd * 0.3), (x1 - 0.01, yd + hd * 0.25)], "navy" if col != "navy" else "white",
           detail=2, width=0.012)
    # waves
    for k, yy in enumerate((yw + hd * 0.55 + 0.025, yw + hd * 0.55 + 0.055)):
        xs = np.linspace(0.5 - hl * 0.6 + 0.05 * k, 0.5 + hl * 0.52 + 0.05 * k, 13)
        b.line([(x, yy + 0.012 * np.sin(9 * x * 2 * np.pi / 1.5)) for x in xs], "blue", detail=1, width=0.01)


# -- rocket --------------------------------------------------------------------------------------------
@category("rocket", "vehicles")
def rocket(b):
    W = b.uniform("body_width", 0.14, 0.2)
    H = b.uniform("height", 0.52, 0.64)
    nose = b.uniform("nose_length", 0.13, 0.22)
    fins = b.integer("fins", 2, 3)
    fs = b.uniform("fin_size", 0.07, 0.12)
    nwin = b.integer("windows", 1, 3)
    flame = b.uniform("flame", 0.06, 0.14)
    col = b.choice("color", ["white", "silver", "red", "blue", "gray"])
    cx = 0.5
    top = 0.5 - (H + flame + 0.03) / 2
    yb = top + H
    yn = top + nose
    accent = "red" if col != "red" else "white"
    # side fins (behind the body)
    for s in (-1, 1):
        b.poly([(cx + s * W * 0.45, yb - fs * 1.9), (cx + s * (W / 2 + fs), yb - fs * 0.2),
                (cx + s * (W / 2 + fs), yb + fs * 0.35), (cx + s * W * 0.45, yb)], accent, detail=0)
    # body: cylinder + ogive nose
    t = np.linspace(0, 1, 9)
    hw = W / 2 * np.cos(t * np.pi / 2) ** 0.6
    right = [(cx + w, yn - tt * nose) for w, tt in zip(hw, t)]
    left = [(cx - w, yn - tt * nose) for w, tt in zip(hw[::-1], t[::-1])]
    b.poly([(cx + W / 2, yb)] + right + left[1:] + [(cx - W / 2, yb)], col, detail=0)
    b.line([(cx - W / 2 * 0.98, yn + 0.005), (cx + W / 2 * 0.98, yn + 0.005)], accent, detail=2, width=0.012)
    # nozzle + flame
    b.poly([(cx - W * 0.3, yb), (cx + W * 0.3, yb), (cx + W * 0.38, yb + 0.03), (cx - W * 0.38, yb + 0.03)],
           "darkgray", detail=1)
    fy = yb + 0.03
    b.poly([(cx - W * 0.34, fy), (cx + W * 0.34, fy), (cx + W * 0.2, fy + flame * 0.6), (cx + W * 0.08, fy + flame * 0.45),
            (cx, fy + flame), (cx - W * 0.08, fy + flame * 0.45), (cx - W * 0.2, fy + flame * 0.6)], "orange", detail=1)
    b.poly([(cx - W * 0.18, fy), (cx + W * 0.18, fy), (cx, fy + flame * 0.55)], "yellow", detail=2)
    if fins == 3:
        b.poly([(cx - 0.012, yb - fs * 1.7), (cx + 0.012, yb - fs * 1.7), (cx + 0.014, yb + fs * 0.35),
                (cx - 0.014, yb + fs * 0.35)], accent, detail=1)
    # portholes
    body_top, body_bot = yn + 0.04, yb - fs * 2.0
    ys = np.linspace(body_top + W * 0.25, max(body_top + W * 0.25, body_bot), nwin) if nwin > 1 else [body_top + W * 0.35]
    for y in ys:
        _circle(b, cx, y, W * 0.24, "silver" if col != "silver" else "gray", detail=1, n=14)
        _circle(b, cx, y, W * 0.16, "sky", detail=2, n=12)


# -- hot air balloon ------------------------------------------------------------------------------------
@category("hot_air_balloon", "vehicles")
def hot_air_balloon(b):
    R = b.uniform("envelope_radius", 0.18, 0.23)
    sy = b.uniform("elongation", 0.95, 1.15)
    neck = b.uniform("neck_width", 0.045, 0.08)
    rope = b.uniform("rope_length", 0.07, 0.12)
    bs = b.uniform("basket_size", 0.09, 0.12)
    gores = b.integer("gores", 2, 4)
    col = b.choice("color", ["red", "yellow", "orange", "blue", "purple", "green", "pink"])
    stripe = {"red": "yellow", "yellow": "red", "orange": "yellow", "blue": "yellow", "purple": "orange",
              "green": "yellow", "pink": "purple"}[col]
    cx = 0.5
    total = R * sy * 2.25 + rope + bs
    top = 0.5 - total / 2
    cy = top + R * sy
    ny = cy + R * sy * 1.25
    # right profile from the top (a=-pi/2) round to just below the equator, then taper to the neck
    a = np.linspace(-np.pi / 2, 0.45, 12)
    prof = [(R * np.cos(t), cy + R * sy * np.sin(t)) for t in a]
    p0 = prof[-1]
    ctrl = (R * 0.62, cy + R * sy * 1.0)
    for s in np.linspace(0.2, 1.0, 5):
        x = (1 - s) ** 2 * p0[0] + 2 * s * (1 - s) * ctrl[0] + s * s * neck
        y = (1 - s) ** 2 * p0[1] + 2 * s * (1 - s) * ctrl[1] + s * s * ny
        prof.append((x, y))
    env = [(cx + x, y) for x, y in prof] + [(cx - x, y) for x, y in prof[::-1]][:-1]
    b.poly(env, col, detail=0)
    # gores (vertical seams) and a band
    fs = np.linspace(-1, 1, gores + 2)[1:-1]
    for f in fs:
        b.line([(cx + f * x, y) for x, y in prof], stripe, detail=2 if gores > 2 else 1, width=0.012)
    yband = cy + R * sy * 0.45
    hw = R * np.cos(np.arcsin(0.45 / 1.0))
    b.arc(cx, yband - 0.02, hw * 0.98, 0.03, 0.15, np.pi - 0.15, stripe, detail=2, width=0.014)
    # ropes, burner, basket
    by = ny + rope
    b.line([(cx - neck, ny), (cx - bs * 0.55, by)], "brown", detail=0, width=0.008)
    b.line([(cx + neck, ny), (cx + bs * 0.55, by)], "brown", detail=0, width=0.008)
    b.rect(cx - 0.02, ny - 0.005, cx + 0.02, ny + 0.02, "darkgray", detail=2)
    b.poly([(cx - bs * 0.6, by), (cx + bs * 0.6, by), (cx + bs * 0.5, by + bs), (cx - bs * 0.5, by + bs)], "wood",
           detail=0)
    b.line([(cx - bs * 0.56, by + bs * 0.35), (cx + bs * 0.56, by + bs * 0.35)], "brown", detail=2, width=0.01)
