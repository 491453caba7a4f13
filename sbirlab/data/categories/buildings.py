"""Drawing programs: buildings. Front or side views standing on a ground line near y = 0.88 (y goes down)."""
from __future__ import annotations

import numpy as np

from ._registry import category


from ._circle_kit import _circle


# -- helpers ----------------------------------------------------------------------------------
def _crenel_pts(x0, x1, ytop, ybot, n, mh):
    """A block from ``ybot`` up to ``ytop`` whose top carries ``n`` merlons of height ``mh``."""
    k = 2 * n - 1
    mw = (x1 - x0) / k
    pts = [(x0, ybot)]
    for i in range(k):
        xa, xb = x0 + i * mw, x0 + (i + 1) * mw
        y = ytop if i % 2 == 0 else ytop + mh
        pts += [(xa, y), (xb, y)]
    pts.append((x1, ybot))
    return pts


def _arch_pts(x0, x1, ybot, ytop, n=8):
    """A door/window with a round top: rectangle ``[x0, x1] x [ytop, ybot]``."""
    r = (x1 - x0) / 2
    cx = (x0 + x1) / 2
    yc = min(ytop + r, ybot)
    t = np.linspace(np.pi, 2 * np.pi, n)
    top = [(cx + r * np.cos(a), yc + (yc - ytop) * np.sin(a)) for a in t]
    return [(x0, ybot)] + top + [(x1, ybot)]


def _window(b, x0, y0, x1, y1, frame="white", glass="sky", detail=1):
    b.rect(x0, y0, x1, y1, glass, detail=detail)
    xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
    b.line([(xm, y0), (xm, y1), (xm, ym), (x0, ym), (x1, ym)], frame, detail=2, width=0.008)


def _serpentine_h(x0, x1, ys):
    """One polyline tracing horizontal lines at ``ys`` (joined alternately at the ends)."""
    pts = []
    for i, y in enumerate(ys):
        pts += [(x0, y), (x1, y)] if i % 2 == 0 else [(x1, y), (x0, y)]
    return pts


def _serpentine_v(xs, y0, y1):
    pts = []
    for i, x in enumerate(xs):
        pts += [(x, y0), (x, y1)] if i % 2 == 0 else [(x, y1), (x, y0)]
    return pts


# -- house -------------------------------------------------------------------------------------------
@category("house", "buildings")
def house(b):
    W = b.uniform("width", 0.46, 0.62)
    Hw = b.uniform("wall_height", 0.24, 0.34)
    rh = b.uniform("roof_height", 0.15, 0.25)
    floors = b.integer("floors", 1, 2)
    nwin = b.integer("windows", 1, 3)
    door_slot = b.integer("door_slot", 0, nwin)
    chimney = b.integer("chimney", 0, 1)
    col = b.choice("color", ["white", "cream", "beige", "yellow", "brick", "sky", "pink"])
    roofc = b.choice("roof_color", ["brick", "darkred", "brown", "darkgray"])
    if floors == 2:
        Hw *= 1.3
    g = 0.5 + (Hw + rh) / 2 + 0.02
    x0, x1 = 0.5 - W / 2, 0.5 + W / 2
    yw = g - Hw
    if chimney:
        cxp = x0 + W * 0.72
        b.rect(cxp, yw - rh * 0.85, cxp + 0.055, yw - rh * 0.3, "brick", detail=0)
    b.rect(x0, yw, x1, g, col, detail=0)
    b.tri((x0 - 0.045, yw + 0.005), (x1 + 0.045, yw + 0.005), (0.5, yw - rh), roofc, detail=0)
    frame = "white" if col != "white" else "brown"
    # ground floor: door + windows in nwin + 1 slots
    slots = x0 + (np.arange(nwin + 1) + 0.5) * W / (nwin + 1)
    fh = Hw / floors
    ww = min(0.075, W / (nwin + 1) * 0.55)
    for i, x in enumerate(slots):
        if i == door_slot:
            dw = min(0.085, W / (nwin + 1) * 0.6)
            b.rect(x - dw / 2, g - min(0.17, fh * 0.72), x + dw / 2, g, "brown", detail=1)
            _circle(b, x + dw * 0.3, g - min(0.17, fh * 0.72) / 2, 0.008, "gold", detail=2, n=6)
        else:
            yc = g - fh * 0.55
            _window(b, x - ww / 2, yc - ww / 2, x + ww / 2, yc + ww / 2, frame)
    if floors == 2:
        slots = x0 + (np.arange(nwin) + 0.5) * W / nwin
        for x in slots:
            yc = g - fh * 1.5
            _window(b, x - ww / 2, yc - ww / 2, x + ww / 2, yc + ww / 2, frame)
    elif rh > 0.19:
        _circle(b, 0.5, yw - rh * 0.38, 0.028, "sky", detail=2, n=12)


# -- castle ------------------------------------------------------------------------------------------
@category("castle", "buildings")
def castle(b):
    W = b.uniform("width", 0.62, 0.78)
    wh = b.uniform("wall_height", 0.22, 0.3)
    th = b.uniform("tower_height", 0.4, 0.52)
    tw = b.uniform("tower_width", 0.12, 0.16)
    towers = b.integer("towers", 2, 3)
    merlons = b.integer("merlons", 3, 5)
    roof = b.choice("tower_roof", ["battlement", "cone"])
    col = b.choice("color", ["gray", "lightgray", "beige", "tan", "darkgray"])
    roofc = "darkred" if col != "darkgray" else "navy"
    g = 0.88
    x0, x1 = 0.5 - W / 2, 0.5 + W / 2
    mh = 0.035
    tops = []
    if towers == 3:                                   # central keep behind the wall
        kw = tw * 1.3
        kt = g - min(th * 1.18, 0.62 if roof == "battlement" else 0.56)
        b.poly(_crenel_pts(0.5 - kw / 2, 0.5 + kw / 2, kt, g, 3, mh), col, detail=0)
        tops.append((0.5, kt, kw))
    b.poly(_crenel_pts(x0 + tw * 0.5, x1 - tw * 0.5, g - wh, g, merlons + 2, mh), col, detail=0)
    for xc in (x0 + tw / 2, x1 - tw / 2):
        if roof == "battlement":
            b.poly(_crenel_pts(xc - tw / 2 - 0.012, xc + tw / 2 + 0.012, g - th - 0.03, g - th + 0.035, 3, mh), col,
                   detail=0)
            b.rect(xc - tw / 2, g - th + 0.03, xc + tw / 2, g, col, detail=0)
        else:
            b.rect(xc - tw / 2, g - th, xc + tw / 2, g, col, detail=0)
        tops.append((xc, g - th - 0.03 if roof == "battlement" else g - th, tw))
    if roof == "cone":
        for xc, yt, w in tops:
            b.tri((xc - w / 2 - 0.015, yt + 0.003), (xc + w / 2 + 0.015, yt + 0.003), (xc, yt - w * 1.05), roofc,
                  detail=0)
    # gate with portcullis
    gw = b.uniform("gate_width", 0.09, 0.14)
    gh = min(wh * 0.7, 0.17)
    b.poly(_arch_pts(0.5 - gw / 2, 0.5 + gw / 2, g, g - gh), "darkgray" if col != "darkgray" else "black", detail=1)
    b.poly(_serpentine_v(np.linspace(0.5 - gw * 0.3, 0.5 + gw * 0.3, 3), g - gh + gw * 0.2, g), "black", detail=2,
           closed=False, width=0.007)
    # arrow slits on the towers, flags
    for xc, yt, w in tops:
        b.rect(xc - 0.009, yt + 0.08, xc + 0.009, yt + 0.13, "black", detail=2)
    nflags = b.integer("flags", 0, 2)
    for xc, yt, w in tops[-nflags:] if nflags else []:
        ft = yt - (w * 1.05 if roof == "cone" else 0.0)
        b.line([(xc, ft), (xc, ft - 0.08)], "darkgray", detail=1, width=0.008)
        b.tri((xc, ft - 0.08), (xc + 0.055, ft - 0.065), (xc, ft - 0.05), "red", detail=1)


# -- windmill ------------------------------------------------------------------------------------------
@category("windmill", "buildings")
def windmill(b):
    th = b.uniform("tower_height", 0.36, 0.46)
    bw = b.uniform("base_width", 0.22, 0.3)
    taper = b.uniform("taper", 0.45, 0.7)
    sl = b.uniform("sail_length", 0.24, 0.32)
    sw = b.uniform("sail_width", 0.05, 0.08)
    ang = b.uniform("sail_angle", 0.0, np.pi / 2)
    cap = b.choice("cap", ["dome", "pointed"])
    col = b.choice("color", ["white", "wood", "brick", "beige", "gray", "red"])
    g = 0.9
    cx = 0.5
    yt = g - th
    tw = bw * taper
    b.poly([(cx - bw / 2, g), (cx - tw / 2, yt), (cx + tw / 2, yt), (cx + bw / 2, g)], col, detail=0)
    capc = "darkgray" if col != "darkgray" else "brown"
    if cap == "dome":
        b.poly([(cx - tw / 2 - 0.02, yt + 0.005)] + [(cx + (tw / 2 + 0.02) * np.cos(a), yt + 0.005 + 0.07 * np.sin(a))
                                                    for a in np.linspace(np.pi, 2 * np.pi, 9)], capc, detail=0)
    else:
        b.tri((cx - tw / 2 - 0.025, yt + 0.005), (cx + tw / 2 + 0.025, yt + 0.005), (cx, yt - 0.09), capc, detail=0)
    b.poly(_arch_pts(cx - 0.035, cx + 0.035, g, g - 0.09), "brown", detail=1)
    b.rect(cx - 0.022, yt + th * 0.3, cx + 0.022, yt + th * 0.3 + 0.045, "sky", detail=2)
    # sails: a spar and a lattice sail offset to one side, 4 blades
    hub = (cx, yt - 0.005)
    for k in range(4):
        a = ang + k * np.pi / 2
        d = np.array([np.cos(a), np.sin(a)])
        nrm = np.array([-d[1], d[0]])
        h = np.array(hub)
        b.line([tuple(h), tuple(h + d * sl)], "wood", detail=0, width=0.014)
        p0, p1 = h + d * sl * 0.28, h + d * sl * 0.98
        q0, q1 = p0 + nrm * sw, p1 + nrm * sw
        b.poly([tuple(p0), tuple(p1), tuple(q1), tuple(q0)], "cream", detail=0)
        m0, m1 = (p0 + q0) / 2, (p1 + q1) / 2
        b.line([tuple(m0), tuple(m1)], "tan", detail=2, width=0.006)
    _circle(b, *hub, 0.022, "darkgray", detail=1, n=10)


# -- lighthouse ------------------------------------------------------------------------------------------
@category("lighthouse", "buildings")
def lighthouse(b):
    H = b.uniform("height", 0.46, 0.56)
    bw = b.uniform("base_width", 0.2, 0.27)
    taper = b.uniform("taper", 0.5, 0.68)
    stripes = b.integer("stripes", 2, 4)
    beam = b.uniform("beam_length", 0.12, 0.22)
    lh = b.uniform("lantern_height", 0.06, 0.09)
    col = b.choice("color", ["red", "black", "blue", "green", "darkred"])
    g = 0.88
    cx = 0.5
    yt = g - H
    tw = bw * taper
    ly = yt - 0.025 - lh / 2                         # lantern centre
    # light beams (behind the lantern)
    for s in (-1, 1):
        b.poly([(cx + s * 0.03, ly), (cx + s * (0.06 + beam), ly - 0.065), (cx + s * (0.06 + beam), ly + 0.065)],
               "yellow", detail=1)
    # rocks
    b.poly([(cx - bw / 2 - 0.1, g + 0.02), (cx - bw / 2 - 0.07, g - 0.03), (cx - bw / 2 - 0.02, g - 0.04),
            (cx + bw / 2 + 0.03, g - 0.035), (cx + bw / 2 + 0.08, g - 0.015), (cx + bw / 2 + 0.1, g + 0.02)],
           "darkgray", detail=1)
    b.poly([(cx - bw / 2, g), (cx - tw / 2, yt), (cx + tw / 2, yt), (cx + bw / 2, g)], "white", detail=0)

    def hw(y):
        return (bw + (tw - bw) * (g - y) / H) / 2

    seg = H / (2 * stripes)
    for i in range(stripes):
        ya = yt + seg * (2 * i + 1)
        yb = ya + seg
        b.poly([(cx - hw(yb), yb), (cx - hw(ya), ya), (cx + hw(ya), ya), (cx + hw(yb), yb)], col, detail=0)
    # gallery, lantern, dome
    b.rect(cx - tw / 2 - 0.025, yt - 0.025, cx + tw / 2 + 0.025, yt, "darkgray", detail=0)
    lw = tw * 0.85
    b.rect(cx - lw / 2, yt - 0.025 - lh, cx + lw / 2, yt - 0.025, "yellow", detail=0)
    b.line([(cx, yt - 0.025 - lh), (cx, yt - 0.025)], "darkgray", detail=2, width=0.007)
    dome = [(cx + (lw / 2 + 0.012) * np.cos(a), yt - 0.025 - lh + 0.045 * np.sin(a)) for a in np.linspace(np.pi, 2 * np.pi, 9)]
    b.poly(dome, col, detail=0)
    b.line([(cx, yt - 0.025 - lh - 0.045), (cx, yt - 0.025 - lh - 0.07)], "darkgray", detail=2, width=0.01)
    # door and small windows
    b.poly(_arch_pts(cx - 0.025, cx + 0.025, g, g - 0.07), "brown", detail=1)
    nw = b.integer("windows", 0, 2)
    for k in range(nw):
        y = yt + H * (0.3 + 0.25 * k)
        b.rect(cx - 0.011, y, cx + 0.011, y + 0.03, "darkgray", detail=2)


# -- skyscraper ------------------------------------------------------------------------------------------
@category("skyscraper", "buildings")
def skyscraper(b):
    tiers = b.integer("tiers", 1, 3)
    W = b.uniform("width", 0.24, 0.34)
    H = b.uniform("height", 0.62, 0.72)
    floors = b.integer("floors", 5, 9)
    cols = b.integer("columns", 2, 4)
    spire = b.uniform("spire", 0.0, 0.1)
    col = b.choice("color", ["sky", "silver", "gray", "navy", "teal", "darkgray"])
    g = 0.9
    cx = 0.5
    fr = {1: [1.0], 2: [0.68, 0.32], 3: [0.52, 0.3, 0.18]}[tiers]
    wr = [1.0, 0.72, 0.48]
    y = g
    linec = "white" if col in ("navy", "darkgray", "teal") else "darkgray"
    parts = []
    for i in range(tiers):
        h = H * fr[i]
        w = W * wr[i]
        b.rect(cx - w / 2, y - h, cx + w / 2, y, col, detail=0)
        parts.append((cx - w / 2, y - h, cx + w / 2, y))
        y -= h
    # window grid: floors (horizontal) and columns (vertical) as two serpentine strokes per tier
    fh = H / (floors + 2)
    for j, (xa, ya, xb, yb) in enumerate(parts):
        ib = 0.018
        nf = max(1, int(round((yb - ya) / fh)) - 1)
        ys = np.linspace(ya + (yb - ya) / (nf + 1), yb - (yb - ya) / (nf + 1), nf)
        if j == 0:
            ys = ys[ys < yb - 0.07] if len(ys) > 2 else ys
        b.line(_serpentine_h(xa + ib, xb - ib, ys), linec, detail=1, width=0.007)
        nc = max(1, cols - j)
        xs = np.linspace(xa, xb, nc + 2)[1:-1]
        b.line(_serpentine_v(xs, ya + ib, yb - (0.07 if j == 0 else ib)), linec, detail=1, width=0.007)
    # entrance
    b.rect(cx - 0.035, g - 0.06, cx + 0.035, g, "darkgray", detail=1)
    if spire > 0.03:
        b.line([(cx, y), (cx, y - spire)], "darkgray", detail=1, width=0.012)
        b.rect(cx - W * wr[tiers - 1] * 0.25, y - 0.018, cx + W * wr[tiers - 1] * 0.25, y, col, detail=1)


# -- tent ------------------------------------------------------------------------------------------------
@category("tent", "buildings")
def tent(b):
    W = b.uniform("width", 0.5, 0.66)
    H = b.uniform("height", 0.36, 0.5)
    dw = b.uniform("door_width", 0.3, 0.6)
    view = b.choice("view", ["front", "three_quarter"])
    ropes = b.integer("guy_ropes", 0, 1)
    col = b.choice("color", ["orange", "green", "red", "yellow", "blue", "olive"])
    g = 0.5 + H / 2 + 0.04
    rx = 0.06 if ropes else 0.0                       # guy ropes reach this far past the corners
    if view == "front":
        cx = 0.5
        fx0, fx1 = cx - W / 2, cx + W / 2
    else:
        depth = W * 0.4
        fx1 = 0.5 + (W * 0.72 + depth) / 2
        fx0 = fx1 - W * 0.72
        cx = (fx0 + fx1) / 2
        # side panel going back to the left
        b.poly([(fx0, g), (cx, g - H), (cx - depth, g - H + 0.04), (fx0 - depth, g - 0.03)], col, detail=0)
        b.line([(cx - depth * 0.5, g - H + 0.02), (fx0 - depth * 0.5, g - 0.015)], "darkgray", detail=2, width=0.007)
    apex = (cx, g - H)
    # front face with slightly sagging sides
    t = np.linspace(0, 1, 5)[1:-1]
    left = [(fx0 + (cx - fx0) * s + 0.012 * np.sin(np.pi * s), g - H * s + 0.012 * np.sin(np.pi * s)) for s in t]
    right = [(cx + (fx1 - cx) * s - 0.012 * np.sin(np.pi * s), g - H * (1 - s) + 0.012 * np.sin(np.pi * s)) for s in t]
    b.poly([(fx0, g)] + left + [apex] + right + [(fx1, g)], col, detail=0)
    # door opening and tied-back flaps
    half = (fx1 - fx0) * dw / 2
    dtop = (cx, g - H * 0.72)
    b.tri((cx - half, g), dtop, (cx + half, g), "darkgray", detail=0)
    b.tri((cx - half, g), (cx - half * 0.55, g - H * 0.3), (cx - half - 0.035, g - H * 0.12), "cream", detail=1)
    b.tri((cx + half, g), (cx + half * 0.55, g - H * 0.3), (cx + half + 0.035, g - H * 0.12), "cream", detail=1)
    # pole and pennant
    b.line([apex, (cx, apex[1] - 0.06)], "darkgray", detail=1, width=0.012)
    b.tri((cx, apex[1] - 0.06), (cx + 0.045, apex[1] - 0.048), (cx, apex[1] - 0.036), "red", detail=2)
    if ropes:
        b.line([_pt(apex, (fx1, g), 0.3), (fx1 + rx, g)], "tan", detail=1, width=0.006)
        b.line([_pt(apex, (fx0, g), 0.3), (fx0 - rx, g)], "tan", detail=1, width=0.006)
    b.line([(max(0.08, fx0 - 0.1), g + 0.005), (min(0.92, fx1 + 0.1), g + 0.005)], "olive", detail=2, width=0.008)


def _pt(p, q, t):
    return (p[0] + (q[0] - p[0]) * t, p[1] + (q[1] - p[1]) * t)


# -- church ----------------------------------------------------------------------------------------------
@category("church", "buildings")
def church(b):
    nl = b.uniform("nave_length", 0.32, 0.42)
    nh = b.uniform("nave_height", 0.18, 0.26)
    tw = b.uniform("tower_width", 0.12, 0.16)
    th = b.uniform("tower_height", 0.33, 0.42)
    sh = b.uniform("spire_height", 0.16, 0.24)
    nwin = b.integer("windows", 2, 4)
    col = b.choice("color", ["white", "beige", "gray", "brick", "cream", "tan"])
    roofc = "darkgray" if col != "darkgray" else "brown"
    g = 0.88
    total = nl + tw
    tx1 = 0.5 + total / 2
    tx0 = tx1 - tw
    nx0 = tx0 - nl
    # nave with its gable facing us
    rh = nl * 0.35
    b.rect(nx0, g - nh, tx0, g, col, detail=0)
    b.tri((nx0 - 0.025, g - nh + 0.005), (tx0 + 0.01, g - nh + 0.005), ((nx0 + tx0) / 2 - 0.008, g - nh - rh), roofc,
          detail=0)
    # tower, spire and cross
    b.rect(tx0, g - th, tx1, g, col, detail=0)
    sx = (tx0 + tx1) / 2
    b.tri((tx0 - 0.015, g - th + 0.003), (tx1 + 0.015, g - th + 0.003), (sx, g - th - sh), roofc, detail=0)
    ct = g - th - sh
    b.line([(sx, ct), (sx, ct - 0.075)], "darkgray", detail=0, width=0.014)
    b.line([(sx - 0.025, ct - 0.05), (sx + 0.025, ct - 0.05)], "darkgray", detail=0, width=0.014)
    # door, belfry, rose window, arched windows
    b.poly(_arch_pts(sx - 0.03, sx + 0.03, g, g - 0.1), "brown", detail=1)
    b.poly(_arch_pts(sx - 0.022, sx + 0.022, g - th + 0.09, g - th + 0.025), "darkgray", detail=2)
    ncx = (nx0 + tx0) / 2
    _circle(b, ncx, g - nh - rh * 0.35, min(0.03, rh * 0.28), "sky", detail=1, n=14)
    xs = np.linspace(nx0, tx0, nwin + 2)[1:-1]
    for x in xs:
        b.poly(_arch_pts(x - 0.015, x + 0.015, g - nh * 0.3, g - nh * 0.78), "sky", detail=2)


# -- bridge ----------------------------------------------------------------------------------------------
@category("bridge", "buildings")
def bridge(b):
    style = b.choice("style", ["arch", "suspension"])
    L = b.uniform("length", 0.74, 0.84)
    deck = b.uniform("deck_height", 0.16, 0.26)           # deck height above the water
    spans = b.integer("spans", 1, 4)
    if style == "arch":
        col = b.choice("color", ["gray", "tan", "brick", "beige", "lightgray"])
    else:
        col = b.choice("color", ["red", "orange", "gray", "white", "navy"])
    x0, x1 = 0.5 - L / 2, 0.5 + L / 2
    yw = 0.74
    yd = yw - deck
    # water waves
    for k, yy in enumerate((yw + 0.03, yw + 0.07)):
        xs = np.linspace(x0 + 0.02 + 0.04 * k, x1 - 0.06 + 0.04 * k, 15)
        b.line([(x, yy + 0.01 * np.sin(x * 40)) for x in xs], "blue", detail=1, width=0.01)
    if style == "arch":
        th = 0.045
        pier = 0.05 if spans > 1 else 0.0
        end = 0.06
        aw = (L - 2 * end - pier * (spans - 1)) / spans
        rise = min(aw * 0.5, deck - th - 0.015) * b.uniform("arch_rise", 0.75, 1.0)
        pts = [(x0, yd), (x1, yd), (x1, yw)]
        arcs = []
        for i in range(spans - 1, -1, -1):
            ax0 = x0 + end + i * (aw + pier)
            acx = ax0 + aw / 2
            t = np.linspace(0, -np.pi, 11)
            arc = [(acx + aw / 2 * np.cos(a), yw + rise * np.sin(a)) for a in t]
            pts += arc
            arcs.append((acx, aw, rise))
        pts.append((x0, yw))
        b.poly(pts, col, detail=0)
        for acx, aw_, r in arcs:      # voussoir ring
            b.arc(acx, yw, aw_ / 2 + 0.018, r + 0.018, -np.pi, 0, "darkgray", detail=2, width=0.007)
        # parapet
        b.poly(_serpentine_v(np.linspace(x0 + 0.01, x1 - 0.01, 9), yd - 0.035, yd), "darkgray", closed=False,
               detail=2, width=0.006)
        b.line([(x0, yd - 0.035), (x1, yd - 0.035)], col, detail=1, width=0.014)
    else:
        b.uniform("arch_rise", 0.75, 1.0)               # keep the attribute set identical across styles
        tower_h = deck + 0.2
        txs = (x0 + L * 0.22, x1 - L * 0.22)
        ttop = yw - tower_h
        for tx in txs:
            b.rect(tx - 0.022, ttop, tx + 0.022, yw + 0.01, col, detail=0)
        b.rect(x0, yd, x1, yd + 0.03, "darkgray", detail=0)
        sag = yd - 0.03
        cable = [(x0, yd - 0.005), (txs[0], ttop + 0.01)]
        for s in np.linspace(0.1, 0.9, 9):
            cable.append((txs[0] + (txs[1] - txs[0]) * s, sag - (sag - ttop - 0.01) * (2 * s - 1) ** 2))
        cable += [(txs[1], ttop + 0.01), (x1, yd - 0.005)]
        b.line(cable, col, detail=0, width=0.012)
        # hangers: one serpentine between cable and deck
        nh = 3 + spans * 2
        pts = []
        for i, s in enumerate(np.linspace(0.08, 0.92, nh)):
            x = txs[0] + (txs[1] - txs[0]) * s
            yc = sag - (sag - ttop - 0.01) * (2 * s - 1) ** 2
            pts += [(x, yc), (x, yd)] if i % 2 == 0 else [(x, yd), (x, yc)]
        b.line(pts, col, detail=2, width=0.005)
        for tx in txs:
            b.line([(tx - 0.022, ttop + 0.05), (tx + 0.022, ttop + 0.05)], "darkgray", detail=2, width=0.008)
