"""Drawing programs: everyday objects."""
from __future__ import annotations

import numpy as np

from ._registry import category


@category("cup", "objects")
def cup(b):
    w = b.uniform("width", 0.28, 0.42)           # body half-width... proportions
    h = b.uniform("height", 0.35, 0.55)
    taper = b.uniform("taper", 0.0, 0.08)
    col = b.choice("color", ["white", "red", "blue", "yellow", "teal"])
    x0, x1, y0, y1 = 0.5 - w / 2 - 0.05, 0.5 + w / 2 - 0.05, 0.5 - h / 2, 0.5 + h / 2
    body = [(x0, y0), (x1, y0), (x1 - taper, y1), (x0 + taper, y1)]
    b.poly(body, col, detail=0)
    # handle: a thick arc on the right
    hr = b.uniform("handle", 0.08, 0.13)
    cy = 0.5 - h * 0.05
    b.arc(x1 - 0.01, cy, hr, hr * 1.2, -np.pi / 2, np.pi / 2, col, detail=0, width=0.035)
    b.ellipse((x0 + x1) / 2, y0, w / 2, 0.03, color="darkgray", detail=1)   # rim / coffee
    if b.integer("stripes", 0, 2):
        for k in range(int(b.attrs["stripes"])):
            yy = y0 + h * (0.35 + 0.2 * k)
            b.line([(x0 + taper * 0.5, yy), (x1 - taper * 0.5, yy)], "darkred", detail=2, width=0.025)
    b.ellipse(0.45, y1 + 0.03, w * 0.8, 0.03, color="lightgray", detail=1)   # saucer


@category("umbrella", "objects")
def umbrella(b):
    r = b.uniform("radius", 0.3, 0.42)
    top = b.uniform("top", 0.18, 0.3)
    ribs = b.integer("ribs", 3, 6)
    col = b.choice("color", ["red", "blue", "purple", "yellow", "green", "black"])
    cx = 0.5
    canopy_y = top + r * 0.7
    pts = [(cx + r * np.cos(t), canopy_y - r * 0.7 * np.sin(t)) for t in np.linspace(0, np.pi, 20)]
    # scalloped lower edge
    xs = np.linspace(cx - r, cx + r, ribs + 1)
    for i in range(ribs, 0, -1):
        mid = (xs[i] + xs[i - 1]) / 2
        pts.append((mid, canopy_y - 0.04))
        pts.append((xs[i - 1], canopy_y))
    b.poly(pts, col, detail=0)
    for x in xs[1:-1]:
        b.line([(cx, top), (x, canopy_y)], "darkgray", detail=2, width=0.01)
    shaft_len = b.uniform("shaft", 0.38, 0.5)
    b.line([(cx, top - 0.04), (cx, canopy_y + shaft_len)], "darkgray", detail=0, width=0.02)
    hook = b.uniform("hook", 0.04, 0.07)
    b.arc(cx - hook, canopy_y + shaft_len, hook, hook, 0, np.pi, "brown", detail=0, width=0.03)


# -- small fast helpers for the programs below (private; np.linspace / np.isclose are slow) --------
from ._fit_kit import _arcp, _ell, _fit, _lin, _rot, _span, _xy


def _box(x0, y0, x1, y1):
    return np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], dtype=np.float64)


def _rounded_rect(x0, y0, x1, y1, r, n=4):
    """A rectangle with rounded corners of radius ``r`` (y down)."""
    r = min(r, (x1 - x0) / 2, (y1 - y0) / 2)
    return np.concatenate([_arcp(x1 - r, y0 + r, r, r, -np.pi / 2, 0.0, n),
                           _arcp(x1 - r, y1 - r, r, r, 0.0, np.pi / 2, n),
                           _arcp(x0 + r, y1 - r, r, r, np.pi / 2, np.pi, n),
                           _arcp(x0 + r, y0 + r, r, r, np.pi, 1.5 * np.pi, n)])


# -- furniture -----------------------------------------------------------------------------------
@category("chair", "objects")
def chair(b):
    sw = b.uniform("seat_width", 0.26, 0.36)      # front edge of the seat
    sd = b.uniform("seat_depth", 0.07, 0.12)      # oblique depth of the seat (3/4 view)
    ys = b.uniform("seat_height", 0.52, 0.62)     # y of the seat's front edge (floor at 0.9)
    bh = b.uniform("back_height", 0.26, 0.38)
    style = b.choice("back", ["solid", "slats", "rails", "arch"])
    slats = b.integer("slats", 2, 4)
    col = b.choice("color", ["wood", "brown", "red", "black", "white", "blue"])
    dx = sd * 0.7
    x0 = 0.5 - sw / 2 - dx / 2
    x1 = x0 + sw
    FL, FR, BL, BR = (x0, ys), (x1, ys), (x0 + dx, ys - sd), (x1 + dx, ys - sd)
    floor, leg = 0.9, 0.028
    b.segment_rect((BL[0] + 0.015, BL[1]), (BL[0] + 0.015, floor - sd), leg, col, detail=0)    # back legs
    b.segment_rect((BR[0] - 0.015, BR[1]), (BR[0] - 0.015, floor - sd), leg, col, detail=0)
    ytop = BL[1] - bh
    if style in ("solid", "arch"):
        top = _arcp((BL[0] + BR[0]) / 2, ytop + 0.02, sw / 2, 0.07 if style == "arch" else 0.015, np.pi, 2 * np.pi, 12)
        b.poly(np.concatenate([[BL], top, [BR]]), col, detail=0)
        if style == "arch":
            b.line(_arcp((BL[0] + BR[0]) / 2, ytop + 0.07, sw / 2 - 0.04, 0.05, np.pi * 1.1, np.pi * 1.9, 8),
                   "black", detail=2, width=0.01)
        else:
            b.poly(_box(BL[0] + 0.04, ytop + 0.05, BR[0] - 0.04, BL[1] - 0.06), col, detail=2)      # inset panel
    else:
        b.segment_rect(BL, (BL[0], ytop), 0.035, col, detail=0)                                    # posts
        b.segment_rect(BR, (BR[0], ytop), 0.035, col, detail=0)
        b.poly(_box(BL[0] - 0.01, ytop - 0.01, BR[0] + 0.01, ytop + 0.06), col, detail=0)         # top rail
        if style == "slats":
            for k in range(slats):
                x = BL[0] + (k + 1) * (BR[0] - BL[0]) / (slats + 1)
                b.poly(_box(x - 0.012, ytop + 0.06, x + 0.012, BL[1]), col, detail=1)
        else:
            for k in range(slats - 1):
                y = ytop + 0.06 + (k + 1) * (BL[1] - ytop - 0.06) / slats
                b.poly(_box(BL[0], y - 0.013, BR[0], y + 0.013), col, detail=1)
    b.poly([FL, FR, BR, BL], col, detail=0)                                                      # seat
    b.poly(_box(x0, ys, x1, ys + 0.035), col, detail=0)                                           # seat edge
    b.poly([FR, BR, (BR[0], BR[1] + 0.035), (FR[0], ys + 0.035)], col, detail=1)                 # side edge
    splay = b.uniform("leg_splay", 0.0, 0.03)
    b.segment_rect((x0 + 0.015, ys + 0.03), (x0 + 0.015 - splay, floor), leg, col, detail=0)     # front legs
    b.segment_rect((x1 - 0.015, ys + 0.03), (x1 - 0.015 + splay, floor), leg, col, detail=0)
    if style != "solid":
        b.line([(x0 + 0.02, ys + 0.2), (x1 - 0.02, ys + 0.2)], col, detail=2, width=0.015)        # stretcher
    _fit(b)


@category("table", "objects")
def table(b):
    style = b.choice("style", ["rect", "round"])
    W = b.uniform("width", 0.62, 0.78)           # front width of the top
    dp = b.uniform("depth", 0.09, 0.15)           # oblique depth of the top
    ty = b.uniform("top_height", 0.36, 0.48)      # y of the top's front edge (floor at 0.9)
    th = b.uniform("thickness", 0.03, 0.055)
    lw = b.uniform("leg_width", 0.025, 0.045)
    col = b.choice("color", ["wood", "brown", "tan", "white", "black"])
    cx, floor = 0.5, 0.9
    if style == "rect":
        dx = dp * 0.6
        x0 = cx - W / 2 - dx / 2
        x1 = x0 + W
        FL, FR, BR, BL = (x0, ty), (x1, ty), (x1 + dx, ty - dp), (x0 + dx, ty - dp)
        inset = 0.03
        b.segment_rect((BL[0] + inset, BL[1]), (BL[0] + inset, floor - dp), lw, col, detail=0)   # back legs
        b.segment_rect((BR[0] - inset, BR[1]), (BR[0] - inset, floor - dp), lw, col, detail=0)
        b.poly(_box(x0 + inset, ty + th - 0.005, x1 - inset, ty + th + 0.05), col, detail=1)   # apron
        b.poly([FL, FR, BR, BL], col, detail=0)                                                # top
        b.poly(_box(x0, ty, x1, ty + th), col, detail=0)                                        # front edge
        b.poly([FR, BR, (BR[0], BR[1] + th), (FR[0], ty + th)], col, detail=1)                 # side edge
        b.segment_rect((x0 + inset, ty + th), (x0 + inset, floor), lw, col, detail=0)          # front legs
        b.segment_rect((x1 - inset, ty + th), (x1 - inset, floor), lw, col, detail=0)
        if b.integer("drawer", 0, 1):
            b.poly(_box(cx - 0.08, ty + th + 0.008, cx + 0.08, ty + th + 0.042), col, detail=2)
            b.poly(_ell(cx, ty + th + 0.025, 0.008, 0.008, 6), "darkgray", detail=2)
        for k in range(2):                                                                     # wood grain
            f = 0.35 + 0.3 * k
            b.line([(x0 + dx * f + 0.06, ty - dp * f), (x1 + dx * f - 0.12, ty - dp * f)], "brown", detail=2,
                   width=0.008)
    else:
        b.attr("drawer", 0)
        rx, ry = W / 2, dp
        cy = ty - ry * 0.3
        edge = np.concatenate([_arcp(cx, cy, rx, ry, 0.0, np.pi, 14), _arcp(cx, cy + th, rx, ry, np.pi, 0.0, 14)])
        foot = b.choice("foot", ["disc", "tripod"])
        b.segment_rect((cx, cy + ry), (cx, floor - 0.03), lw * 1.6, col, detail=0)              # pedestal
        if foot == "disc":
            b.poly(_ell(cx, floor - 0.025, W * 0.22, 0.035, 18), col, detail=0)
        else:
            for s in (-1, 1):
                b.segment_rect((cx, floor - 0.1), (cx + s * W * 0.25, floor), lw, col, detail=0)
            b.segment_rect((cx, floor - 0.1), (cx, floor - 0.04), lw, col, detail=0)
        b.poly(edge, col, detail=0)                                                            # thickness band
        b.poly(_ell(cx, cy, rx, ry, 32), col, detail=0)                                         # top
        b.line(_arcp(cx, cy, rx * 0.6, ry * 0.6, np.pi * 1.1, np.pi * 1.6, 8), "white", detail=2, width=0.01)
    if style == "rect":
        b.attr("foot", 0)
    _fit(b)


@category("lamp", "objects")
def lamp(b):
    style = b.choice("style", ["table", "desk"])
    sw = b.uniform("shade_width", 0.3, 0.42)      # bottom width of the shade / head size
    sh = b.uniform("shade_height", 0.2, 0.3)
    stem = b.uniform("stem_height", 0.26, 0.4)
    base = b.uniform("base_width", 0.18, 0.3)
    col = b.choice("color", ["cream", "white", "red", "blue", "green", "yellow", "beige"])
    cx, floor = 0.5, 0.88
    if style == "table":
        body = b.choice("body", ["stick", "vase"])
        total = sh + stem + 0.05
        y0 = floor - total                                           # top of the shade
        ys = y0 + sh                                                  # bottom of the shade
        b.poly(_rounded_rect(cx - base / 2, floor - 0.05, cx + base / 2, floor, 0.02), "darkgray", detail=0)
        if body == "stick":
            b.segment_rect((cx, ys), (cx, floor - 0.05), 0.03, "gold", detail=0)
        else:
            t = _lin(12)
            hw = 0.03 + 0.09 * np.sin(np.pi * (0.15 + 0.8 * t)) * (base / 0.3)
            yy = ys + t * (floor - 0.05 - ys)
            b.poly(np.concatenate([_xy(cx + hw, yy), _xy(cx - hw, yy)[::-1]]), "gold", detail=0)
        tw = sw * b.uniform("shade_taper", 0.45, 0.75)
        shade = np.concatenate([[(cx - tw / 2, y0), (cx + tw / 2, y0)],
                                _arcp(cx, ys, sw / 2, 0.025, 0.0, np.pi, 10)])
        b.poly(shade, col, detail=0)
        for f in (-0.25, 0.25):                                      # shade pleats
            b.line([(cx + f * tw, y0 + 0.01), (cx + f * sw, ys + 0.015)], "tan", detail=2, width=0.008)
        if b.integer("cord", 0, 1):
            px = cx + sw * 0.3
            b.line([(px, ys + 0.015), (px, ys + 0.1)], "darkgray", detail=2, width=0.008)
            b.poly(_ell(px, ys + 0.11, 0.01, 0.014, 8), "gold", detail=2)
        b.attr("arm_angle", 0.0)
    else:
        b.attr("body", 0)
        b.attr("shade_taper", 0.0)
        b.attr("cord", 0)
        a1 = b.uniform("arm_angle", -0.35, 0.25)                     # lean of the lower arm from vertical
        a2 = b.uniform("arm2_angle", -0.45, 0.25)                    # slope of the upper arm
        x0 = 0.32
        b.poly(_rounded_rect(x0 - base / 2, floor - 0.045, x0 + base / 2, floor, 0.02), col, detail=0)
        j0 = np.array([x0, floor - 0.045])
        j1 = j0 + (stem + 0.1) * np.array([np.sin(a1), -np.cos(a1)])
        j2 = j1 + 0.3 * np.array([np.cos(a2), np.sin(a2)])
        b.segment_rect(j0, j1, 0.03, "darkgray", detail=0)
        b.segment_rect(j1, j2, 0.03, "darkgray", detail=0)
        b.poly(_ell(j1[0], j1[1], 0.025, 0.025, 12), col, detail=1)
        # head: a cone hanging from j2, opening down and to the right
        hd = np.array([0.35, 1.0]) / np.hypot(0.35, 1.0)
        nrm = np.array([hd[1], -hd[0]])
        m = j2 + hd * sh * 0.9
        head = [j2 - nrm * 0.03, j2 + nrm * 0.03, m + nrm * sw * 0.38, m - nrm * sw * 0.38]
        b.poly(head, col, detail=0)
        bulb = _arcp(m[0], m[1], sw * 0.18, sw * 0.18, 0.0, np.pi, 8)
        b.poly(_rot(bulb, np.arctan2(hd[1], hd[0]) - np.pi / 2, m), "yellow", detail=1)
        for s in (-1, 1):                                            # light rays
            p = m + hd * 0.06 + s * nrm * sw * 0.3
            b.line([p, p + hd * 0.07 + s * nrm * 0.035], "yellow", detail=2, width=0.01)
    if style == "table":
        b.attr("arm2_angle", 0.0)
    _fit(b)


@category("clock", "objects")
def clock(b):
    style = b.choice("style", ["wall", "alarm"])
    R = b.uniform("radius", 0.25, 0.33)
    hour = b.uniform("hour", 0.0, 12.0)
    minute = b.uniform("minute", 0.0, 60.0)
    ticks = b.choice("ticks", [4, 12])
    rim = b.uniform("rim", 0.03, 0.06)
    col = b.choice("color", ["red", "black", "blue", "gold", "silver", "wood", "green"])
    cx, cy = 0.5, 0.5 if style == "wall" else 0.55
    if style == "alarm":
        R = R * 0.9
        for s in (-1, 1):                                             # bells behind the case
            a = -np.pi / 2 + s * 0.65
            bc = (cx + (R + 0.02) * np.cos(a), cy + (R + 0.02) * np.sin(a))
            dome = _arcp(0.0, 0.0, 0.1, 0.08, np.pi, 2 * np.pi, 10)
            b.poly(_rot(dome + bc, a + np.pi / 2, bc), col, detail=0)
        for s in (-1, 1):                                             # legs
            a = np.pi / 2 + s * 0.6
            p0 = (cx + R * 0.9 * np.cos(a), cy + R * 0.9 * np.sin(a))
            b.segment_rect(p0, (cx + (R + 0.08) * np.cos(a), cy + (R + 0.08) * np.sin(a)), 0.03, col, detail=0)
        b.segment_rect((cx, cy - R), (cx, cy - R - 0.06), 0.025, "darkgray", detail=1)     # hammer
        b.poly(_ell(cx, cy - R - 0.07, 0.022, 0.014, 10), "darkgray", detail=1)
    b.poly(_ell(cx, cy, R, R, 36), col, detail=0)                                          # case
    b.poly(_ell(cx, cy, R - rim, R - rim, 32), "white", detail=1 if style == "alarm" else 0)   # face
    n_tk = int(ticks)
    for k in range(n_tk):
        a = 2 * np.pi * k / n_tk
        big = (k * 12 // n_tk) % 3 == 0
        r0 = (R - rim) * (0.78 if big else 0.86)
        r1 = (R - rim) * 0.94
        b.line([(cx + r0 * np.sin(a), cy - r0 * np.cos(a)), (cx + r1 * np.sin(a), cy - r1 * np.cos(a))], "black",
               detail=1 if n_tk == 4 else 2, width=0.015 if big else 0.01)
    am = 2 * np.pi * minute / 60
    ah = 2 * np.pi * (hour + minute / 60) / 12
    rm, rh = (R - rim) * 0.8, (R - rim) * 0.5
    b.line([(cx, cy), (cx + rh * np.sin(ah), cy - rh * np.cos(ah))], "black", detail=0, width=0.03)   # hour hand
    b.line([(cx, cy), (cx + rm * np.sin(am), cy - rm * np.cos(am))], "black", detail=0, width=0.02)   # minute hand
    b.poly(_ell(cx, cy, 0.018, 0.018, 8), "black", detail=1)
    _fit(b)


@category("key", "objects")
def key(b):
    bow = b.choice("bow", ["round", "oval", "clover", "square"])
    L = b.uniform("shaft_length", 0.36, 0.48)
    T = b.uniform("shaft_thickness", 0.05, 0.075)
    teeth = b.integer("teeth", 2, 5)
    br = b.uniform("bow_size", 0.1, 0.14)
    ang = b.uniform("angle", -0.5, 0.5)
    col = b.choice("color", ["gold", "silver", "darkgray", "tan"])
    total = 2 * br + L
    xb = 0.5 - total / 2 + br                         # bow centre
    y = 0.48
    xs, xe = xb + br * 0.8, xb + br + L               # shaft start / end
    depth = b.rng.uniform(0.35, 1.0, teeth) * 0.08
    tw = L * 0.5 / teeth                              # tooth pitch along the last half of the shaft
    pts = [(xs, y - T / 2), (xe - 0.015, y - T / 2), (xe, y - T / 2 + 0.015), (xe, y + T / 2)]
    x = xe
    for k in range(teeth):
        x_next = x - tw
        pts += [(x - tw * 0.1, y + T / 2 + depth[k]), (x_next + tw * 0.2, y + T / 2 + depth[k]),
                (x_next + tw * 0.05, y + T / 2)]
        x = x_next
    pts.append((xs, y + T / 2))
    piv = (0.5, 0.5)
    b.poly(_rot(pts, ang, piv), col, detail=0)
    if bow == "round":
        outer = _ell(xb, y, br, br, 28)
    elif bow == "oval":
        outer = _ell(xb, y, br * 0.8, br * 1.2, 28)
    elif bow == "square":
        outer = _rounded_rect(xb - br, y - br, xb + br, y + br, br * 0.35)
    else:                                             # clover: three lobes
        t = _span(0.0, 2 * np.pi, 37)[:-1]
        rr = br * (0.78 + 0.22 * np.cos(3 * (t - np.pi)))
        outer = _xy(xb + rr * np.cos(t), y + rr * np.sin(t))
    b.poly(_rot(outer, ang, piv), col, detail=0)
    hole = b.uniform("hole", 0.3, 0.5)
    b.poly(_rot(_ell(xb - br * 0.25, y, br * hole, br * hole, 16), ang, piv), "gray", detail=0)
    b.poly(_rot(_box(xs + 0.01, y - T / 2 - 0.015, xs + 0.04, y + T / 2 + 0.015), ang, piv), col, detail=1)  # collar
    b.line(_rot([(xs + 0.06, y), (xe - 0.03, y)], ang, piv), "darkgray", detail=2, width=0.008)         # groove
    _fit(b)


@category("bottle", "objects")
def bottle(b):
    bw = b.uniform("body_width", 0.12, 0.19)      # half-width of the body
    bh = b.uniform("body_height", 0.3, 0.44)
    nw = b.uniform("neck_width", 0.035, 0.055)    # half-width of the neck
    nl = b.uniform("neck_length", 0.1, 0.2)
    shoulder = b.uniform("shoulder", 0.05, 0.16)  # height of the shoulder (0 = square, large = wine)
    cap = b.choice("cap", ["none", "cork", "screw"])
    label = b.choice("label", ["none", "band", "oval"])
    col = b.choice("color", ["green", "darkgreen", "brown", "sky", "blue", "cyan"])
    total = bh + shoulder + nl + (0.05 if cap != "none" else 0.01)
    bot = 0.5 + total / 2
    ysh = bot - bh                                  # where the shoulder starts
    ynk = ysh - shoulder                            # where the neck starts
    ytop = ynk - nl
    u = _lin(8)
    sh = nw + (bw - nw) * (1 - np.cos(np.pi * u)) / 2                       # neck -> body, smooth
    ysh_pts = ynk + u * shoulder
    right = np.concatenate([[(0.5 + nw + 0.012, ytop), (0.5 + nw + 0.012, ytop + 0.02), (0.5 + nw, ytop + 0.025)],
                            _xy(0.5 + sh, ysh_pts),
                            _arcp(0.5 + bw - 0.03, bot - 0.03, 0.03, 0.03, 0.0, np.pi / 2, 4)])
    left = right[::-1] * (-1, 1) + (1.0, 0)
    b.poly(np.concatenate([right, left]), col, detail=0)
    if cap == "cork":
        b.poly(_box(0.5 - nw + 0.006, ytop - 0.045, 0.5 + nw - 0.006, ytop + 0.005), "tan", detail=1)
    elif cap == "screw":
        b.poly(_box(0.5 - nw - 0.016, ytop - 0.04, 0.5 + nw + 0.016, ytop + 0.03), "red", detail=1)
    if label == "band":
        lh = bh * 0.4
        b.poly(_box(0.5 - bw, ysh + bh * 0.25, 0.5 + bw, ysh + bh * 0.25 + lh), "cream", detail=1)
        b.line([(0.5 - bw * 0.5, ysh + bh * 0.25 + lh * 0.5), (0.5 + bw * 0.5, ysh + bh * 0.25 + lh * 0.5)],
               "darkred", detail=2, width=0.012)
    elif label == "oval":
        b.poly(_ell(0.5, ysh + bh * 0.45, bw * 0.7, bh * 0.22, 20), "cream", detail=1)
    b.line([(0.5 - bw * 0.6, ysh + 0.04), (0.5 - bw * 0.6, ysh + bh * 0.2)], "white", detail=2, width=0.012)
    _fit(b)


# -- building parts ------------------------------------------------------------------------------
@category("door", "objects")
def door(b):
    W = b.uniform("width", 0.32, 0.42)
    H = b.uniform("height", 0.7, 0.78)
    rows = b.integer("panel_rows", 1, 3)
    cols = b.integer("panel_cols", 1, 2)
    side = b.choice("knob_side", ["left", "right"])
    top = b.choice("top", ["flat", "arch"])
    col = b.choice("color", ["wood", "brown", "red", "blue", "green", "white"])
    cx, floor = 0.5, 0.88
    x0, x1, y0 = cx - W / 2, cx + W / 2, floor - H
    f = 0.03

    def outline(a0, a1, ytop, ybot):
        if top == "flat":
            return _box(a0, ytop, a1, ybot)
        r = (a1 - a0) / 2
        return np.concatenate([[(a0, ybot)], _arcp((a0 + a1) / 2, ytop + r, r, r, np.pi, 2 * np.pi, 14), [(a1, ybot)]])

    b.poly(outline(x0 - f, x1 + f, y0 - f, floor), "darkgray" if col == "white" else "white", detail=0)  # frame
    b.poly(outline(x0, x1, y0, floor), col, detail=0)                                                     # leaf
    m = 0.045
    py0 = y0 + (W / 2 if top == "arch" else 0) + m
    ph = (floor - m - py0 - 0.05 * (rows - 1)) / rows
    pw = (W - 2 * m - 0.04 * (cols - 1)) / cols
    for i in range(rows):
        for j in range(cols):
            a = x0 + m + j * (pw + 0.04)
            c = py0 + i * (ph + 0.05)
            b.poly(_box(a, c, a + pw, c + ph), col, detail=1)
    kh = b.uniform("knob_height", 0.5, 0.6)
    kx = x0 + 0.035 if side == "left" else x1 - 0.035
    ky = floor - H * (1 - kh)
    b.poly(_ell(kx, ky, 0.024, 0.024, 12), "gold", detail=0)
    b.poly(_ell(kx, ky + 0.05, 0.006, 0.01, 6), "black", detail=2)                                      # keyhole
    hx = x1 - 0.004 if side == "left" else x0 + 0.004
    for hy in (y0 + H * 0.15, floor - H * 0.15):                                                        # hinges
        b.poly(_box(hx - 0.008, hy - 0.025, hx + 0.008, hy + 0.025), "darkgray", detail=2)
    b.line([(x0 - 0.12, floor), (x1 + 0.12, floor)], "darkgray", detail=1, width=0.015)                 # floor
    _fit(b)


@category("window", "objects")
def window(b):
    W = b.uniform("width", 0.44, 0.58)
    H = b.uniform("height", 0.42, 0.58)
    rows = b.integer("rows", 1, 3)
    cols = b.integer("cols", 2, 3)
    top = b.choice("top", ["flat", "arch"])
    extra = b.choice("extra", ["none", "shutters", "curtains"])
    sill = b.uniform("sill", 0.03, 0.06)
    col = b.choice("color", ["white", "wood", "blue", "green", "brown", "red"])
    cx = 0.5
    if extra == "shutters":
        W = W * 0.8
    x0, x1 = cx - W / 2, cx + W / 2
    f = 0.035
    ah = W * 0.3 if top == "arch" else 0.0          # height of the arched top
    H = H * 0.8 if top == "arch" else H
    y0 = 0.5 - (H + ah) / 2 - 0.02                  # very top of the window
    ya_out = y0 + ah                                # top of the rectangular part
    y1 = ya_out + H

    def outline(a0, a1, ytop, ybot, hh):
        if top == "flat":
            return _box(a0, ytop, a1, ybot)
        return np.concatenate([[(a0, ybot)], _arcp((a0 + a1) / 2, ytop + hh, (a1 - a0) / 2, hh, np.pi, 2 * np.pi, 14),
                               [(a1, ybot)]])

    if extra == "shutters":
        sw = W * 0.42
        for s in (-1, 1):
            xa = x0 - sw if s < 0 else x1
            b.poly(_box(xa, ya_out, xa + sw, y1), "darkgreen" if col != "green" else "navy", detail=1)
            b.poly(_ell(xa + sw / 2, ya_out + 0.06, 0.02, 0.03, 8), "black", detail=2)   # cut-out
    b.poly(outline(x0, x1, y0, y1, ah), col, detail=0)                                        # frame
    gy0 = y0 + f
    ya = ya_out + (f * 0.4 if top == "arch" else f)                                          # top of the panes
    b.poly(outline(x0 + f, x1 - f, gy0, y1 - f, max(ah - f * 0.6, 0.0)), "sky", detail=0)      # glass
    for j in range(1, cols):                                                                  # muntins
        x = x0 + f + j * (W - 2 * f) / cols
        b.line([(x, gy0 if (top == "arch" and 2 * j == cols) else ya), (x, y1 - f)], col, detail=0, width=0.02)
    for i in range(0 if top == "arch" else 1, rows):
        y = ya + i * (y1 - f - ya) / rows
        b.line([(x0 + f, y), (x1 - f, y)], col, detail=0, width=0.02)
    if extra == "curtains":
        for s in (-1, 1):
            xa = x0 + f if s < 0 else x1 - f
            xin = xa - s * (W * 0.22)
            cur = [(xa, ya), (xin, ya), (xa - s * 0.03, ya + (y1 - ya) * 0.55), (xa - s * 0.05, y1 - f), (xa, y1 - f)]
            b.poly(cur, "pink" if col != "red" else "cream", detail=1)
    b.poly(_box(x0 - sill, y1, x1 + sill, y1 + 0.04), col, detail=0)                               # sill
    b.line([(x0 + f + 0.03, ya + 0.08), (x0 + f + 0.08, ya + 0.03)], "white", detail=2, width=0.01)  # glint
    _fit(b)
