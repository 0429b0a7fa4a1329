#!/usr/bin/env python3
"""A small deterministic PNG renderer for bench/plot_results.py (pure Python 3).

A plot drawn from the same data gives the same PNG bytes on every machine:
drawing is integer pixel work on a palette canvas (no anti-aliasing, no
system fonts), and the deflate stream inside the PNG is written here (fixed
Huffman codes; matches one byte back or one row up) rather than by the zlib
library, whose output differs between zlib builds. zlib is used only for
crc32 and adler32, checksums with a single defined value.

Text uses the X11 misc-fixed 7x13 and 7x13B bitmap fonts ("Public domain
font. Share and enjoy."), printable ASCII only, embedded at the end of this
file: 13 rows per glyph, two hex digits a row, bit x = pixel column x.
"""

import math
import struct
import zlib

GLYPH_W = 7
GLYPH_H = 13
GLYPH_ASCENT = 11


def _decode_font(hexrows):
    s = "".join(hexrows)
    n = GLYPH_H * 2
    glyphs = {}
    for i in range(95):
        chunk = s[i * n:(i + 1) * n]
        glyphs[chr(32 + i)] = [int(chunk[j:j + 2], 16) for j in range(0, n, 2)]
    return glyphs


# ---------------------------------------------------------------- canvas


class Canvas:
    """A width x height image of palette indices (palette: list of (r, g, b))."""

    def __init__(self, width, height, palette, bg=0):
        if len(palette) > 256:
            raise ValueError("at most 256 palette entries")
        self.w = width
        self.h = height
        self.palette = list(palette)
        self.bg = bg
        self.px = bytearray([bg]) * (width * height)
        self.clip = (0, 0, width, height)

    def set_clip(self, x0, y0, x1, y1):
        self.clip = (max(0, x0), max(0, y0), min(self.w, x1), min(self.h, y1))

    def reset_clip(self):
        self.clip = (0, 0, self.w, self.h)

    def put(self, x, y, c):
        cx0, cy0, cx1, cy1 = self.clip
        if cx0 <= x < cx1 and cy0 <= y < cy1:
            self.px[y * self.w + x] = c

    def rect(self, x0, y0, x1, y1, c):
        """Fill [x0, x1) x [y0, y1)."""
        cx0, cy0, cx1, cy1 = self.clip
        x0, x1 = max(x0, cx0), min(x1, cx1)
        y0, y1 = max(y0, cy0), min(y1, cy1)
        if x0 >= x1:
            return
        run = bytes([c]) * (x1 - x0)
        for y in range(y0, y1):
            o = y * self.w
            self.px[o + x0:o + x1] = run

    def frame(self, x0, y0, x1, y1, c):
        """A one-pixel outline of [x0, x1] x [y0, y1] (inclusive)."""
        self.rect(x0, y0, x1 + 1, y0 + 1, c)
        self.rect(x0, y1, x1 + 1, y1 + 1, c)
        self.rect(x0, y0, x0 + 1, y1 + 1, c)
        self.rect(x1, y0, x1 + 1, y1 + 1, c)

    def line(self, x0, y0, x1, y1, c, width=1, dash=None, phase=0):
        """Bresenham line of a square brush `width` pixels wide. dash=(on, off)
        in pixels; phase carries the pattern across joined segments (returned)."""
        lo = -((width - 1) // 2)
        hi = width // 2
        dx = abs(x1 - x0)
        dy = -abs(y1 - y0)
        sx = 1 if x0 < x1 else -1
        sy = 1 if y0 < y1 else -1
        err = dx + dy
        x, y = x0, y0
        period = (dash[0] + dash[1]) if dash else 0
        while True:
            if not dash or phase % period < dash[0]:
                for oy in range(lo, hi + 1):
                    for ox in range(lo, hi + 1):
                        self.put(x + ox, y + oy, c)
            phase += 1
            if x == x1 and y == y1:
                break
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x += sx
            if e2 <= dx:
                err += dx
                y += sy
        return phase

    def polyline(self, pts, c, width=1, dash=None):
        phase = 0
        for (xa, ya), (xb, yb) in zip(pts, pts[1:]):
            phase = self.line(xa, ya, xb, yb, c, width, dash, phase)
            phase -= 1  # the joint pixel is drawn by both segments

    def marker(self, x, y, shape, c, r=4, filled=True, fill=None):
        """shape: 'o' circle, 's' square, 'D' diamond, '^' triangle, 'v'
        triangle down. Hollow markers get a `fill` interior (default: the
        background) and a two-pixel outline."""
        inner = None if filled else (self.bg if fill is None else fill)
        for dy in range(-r - 1, r + 2):
            for dx in range(-r - 1, r + 2):
                if not _inside(shape, dx, dy, r):
                    continue
                if inner is not None and _inside(shape, dx, dy, r - 2):
                    self.put(x + dx, y + dy, inner)
                else:
                    self.put(x + dx, y + dy, c)

    # text

    def text(self, x, y, s, c, bold=False, align="left", valign="top"):
        """Draw s with its cell's top-left at (x, y) (align: left, center,
        right; valign: top, middle, bottom). Returns the width in pixels."""
        font = _BOLD if bold else _REGULAR
        w = text_width(s)
        if align == "center":
            x -= w // 2
        elif align == "right":
            x -= w
        if valign == "middle":
            y -= GLYPH_H // 2
        elif valign == "bottom":
            y -= GLYPH_H
        for i, ch in enumerate(s):
            rows = font.get(ch, font["?"])
            gx = x + i * GLYPH_W
            for ry, bits in enumerate(rows):
                if bits:
                    for bx in range(GLYPH_W):
                        if bits >> bx & 1:
                            self.put(gx + bx, y + ry, c)
        return w

    def text_up(self, x, y, s, c, bold=False):
        """Draw s rotated a quarter turn counter-clockwise (read bottom to
        top), centred on (x, y)."""
        font = _BOLD if bold else _REGULAR
        w = text_width(s)
        left = x - GLYPH_H // 2
        bottom = y + w // 2
        for i, ch in enumerate(s):
            rows = font.get(ch, font["?"])
            for ry, bits in enumerate(rows):
                if bits:
                    for bx in range(GLYPH_W):
                        if bits >> bx & 1:
                            self.put(left + ry, bottom - (i * GLYPH_W + bx), c)

    # output

    def png(self):
        raw = bytearray()
        w = self.w
        for y in range(self.h):
            raw.append(0)  # filter type None
            raw += self.px[y * w:(y + 1) * w]
        ihdr = struct.pack(">IIBBBBB", self.w, self.h, 8, 3, 0, 0, 0)
        plte = b"".join(bytes(rgb) for rgb in self.palette)
        idat = zlib_stream(bytes(raw), w + 1)
        return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"PLTE", plte)
                + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))


def text_width(s):
    return GLYPH_W * len(s)


def _inside(shape, dx, dy, r):
    if r < 0:
        return False
    if shape == "o":
        return dx * dx + dy * dy <= r * r + r
    if shape == "s":
        return abs(dx) <= r - 1 and abs(dy) <= r - 1
    if shape == "D":
        return abs(dx) + abs(dy) <= r + 1
    if shape == "^":
        return -r <= dy <= r and 2 * abs(dx) <= dy + r + 1
    if shape == "v":
        return -r <= dy <= r and 2 * abs(dx) <= r - dy + 1
    raise ValueError("unknown marker %r" % shape)


def _chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


# ---------------------------------------------------------------- deflate

_LEN_BASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59,
             67, 83, 99, 115, 131, 163, 195, 227, 258]
_LEN_EXTRA = [0] * 8 + [1] * 4 + [2] * 4 + [3] * 4 + [4] * 4 + [5] * 4 + [0]
_DIST_BASE = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385,
              513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
_DIST_EXTRA = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10,
               11, 11, 12, 12, 13, 13]


def _rev(code, n):
    r = 0
    for _ in range(n):
        r = (r << 1) | (code & 1)
        code >>= 1
    return r


def _fixed_lit(sym):
    if sym < 144:
        return _rev(0x30 + sym, 8), 8
    if sym < 256:
        return _rev(0x190 + sym - 144, 9), 9
    if sym < 280:
        return _rev(sym - 256, 7), 7
    return _rev(0xC0 + sym - 280, 8), 8


_LIT = [_fixed_lit(s) for s in range(288)]


def _len_table():
    """length 3..258 -> (bits, nbits) of its symbol and extra bits, LSB first."""
    t = {}
    for i, base in enumerate(_LEN_BASE):
        code, n = _LIT[257 + i]
        for e in range(1 << _LEN_EXTRA[i]):
            L = base + e
            if L > 258 or L in t:
                continue
            t[L] = (code | (e << n), n + _LEN_EXTRA[i])
    return t


_LEN = _len_table()


def _dist_code(d):
    i = 0
    while i + 1 < len(_DIST_BASE) and _DIST_BASE[i + 1] <= d:
        i += 1
    return _rev(i, 5) | ((d - _DIST_BASE[i]) << 5), 5 + _DIST_EXTRA[i]


def _common(data, a, b, maxlen):
    """Length of the common prefix of data[a:] and data[b:], at most maxlen
    (valid for overlapping ranges too: that is how deflate copies)."""
    if data[a:a + maxlen] == data[b:b + maxlen]:
        return maxlen
    lo, hi = 0, maxlen
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if data[a:a + mid] == data[b:b + mid]:
            lo = mid
        else:
            hi = mid
    return lo


def deflate(data, stride):
    """A raw deflate stream (one block, fixed Huffman codes) of data. Matches
    are looked for one byte back and `stride` bytes back (one image row)."""
    out = bytearray()
    acc = 0
    nacc = 0
    n = len(data)
    dcodes = {1: _dist_code(1), stride: _dist_code(stride)}
    cands = (1, stride) if stride > 1 else (1,)
    acc |= 0b011 << nacc  # BFINAL = 1, BTYPE = 01 (fixed Huffman)
    nacc += 3
    i = 0
    while i < n:
        best, bestd = 0, 0
        maxlen = n - i if n - i < 258 else 258
        if maxlen >= 3:
            for d in cands:
                if d <= i and data[i] == data[i - d] and data[i + 1] == data[i + 1 - d] \
                        and data[i + 2] == data[i + 2 - d]:
                    L = _common(data, i, i - d, maxlen)
                    if L > best:
                        best, bestd = L, d
        if best >= 3:
            bits, nb = _LEN[best]
            acc |= bits << nacc
            nacc += nb
            bits, nb = dcodes[bestd]
            acc |= bits << nacc
            nacc += nb
            i += best
        else:
            bits, nb = _LIT[data[i]]
            acc |= bits << nacc
            nacc += nb
            i += 1
        if nacc >= 64:
            out += (acc & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little")
            acc >>= 64
            nacc -= 64
    bits, nb = _LIT[256]
    acc |= bits << nacc
    nacc += nb
    out += acc.to_bytes((nacc + 7) // 8, "little")
    return bytes(out)


def zlib_stream(data, stride):
    """data in a zlib container (RFC 1950) around deflate(data, stride)."""
    return (b"\x78\x01" + deflate(data, stride)
            + struct.pack(">I", zlib.adler32(data) & 0xFFFFFFFF))


# ---------------------------------------------------------------- axes


def nice_num(v):
    """Tick label text: 0.1, 2, 50, 1000, 20K."""
    if v >= 10000:
        return "%gK" % (v / 1000)
    return "%g" % v


def pow2_label(k):
    v = 1 << k if k >= 0 else None
    if v is None:
        return "1/%d" % (1 << -k)
    if v >= 1 << 20:
        return "%dM" % (v >> 20)
    if v >= 1 << 10:
        return "%dK" % (v >> 10)
    return "%d" % v


class Axes:
    """A plot area [x0, x1] x [y0, y1] in pixels (y0 on top) with a log2 or
    log10 x scale and a log10 or linear y scale over the given limits."""

    def __init__(self, cv, box, xscale, xlim, yscale, ylim, colors):
        self.cv = cv
        self.x0, self.y0, self.x1, self.y1 = box
        self.xscale, self.yscale = xscale, yscale
        self.xlim, self.ylim = xlim, ylim
        self.c = colors  # dict: axis, grid, text, tick

    @staticmethod
    def _f(scale, v):
        if scale == "log2":
            return rlog(2, v)
        if scale == "log10":
            return rlog(10, v)
        return float(v)

    def _t(self, scale, lim, v):
        a, b = self._f(scale, lim[0]), self._f(scale, lim[1])
        return (self._f(scale, v) - a) / (b - a)

    def px(self, x, y):
        tx = self._t(self.xscale, self.xlim, x)
        ty = self._t(self.yscale, self.ylim, y)
        return (self.x0 + int(math.floor(tx * (self.x1 - self.x0) + 0.5)),
                self.y1 - int(math.floor(ty * (self.y1 - self.y0) + 0.5)))

    def _xpix_exp2(self, k):
        a, b = rlog(2, self.xlim[0]), rlog(2, self.xlim[1])
        return self.x0 + int(math.floor((k - a) / (b - a) * (self.x1 - self.x0) + 0.5))

    def _ypix_exp10(self, e):
        a, b = rlog(10, self.ylim[0]), rlog(10, self.ylim[1])
        return self.y1 - int(math.floor((e - a) / (b - a) * (self.y1 - self.y0) + 0.5))

    def draw_frame(self, xlabel=None, ylabel=None, yticks_labels=True, xticks_labels=True):
        cv, c = self.cv, self.c
        # y ticks and grid
        for v, major in self.y_ticks():
            _, y = self.px(self.xlim[0], v)
            if major:
                cv.rect(self.x0 + 1, y, self.x1, y + 1, c["grid"])
                cv.rect(self.x0 - 4, y, self.x0, y + 1, c["axis"])
                if yticks_labels:
                    cv.text(self.x0 - 6, y, nice_num(v), c["text"], align="right",
                            valign="middle")
            else:
                cv.rect(self.x0 - 2, y, self.x0, y + 1, c["axis"])
        # x ticks and grid
        for k, major in self.x_ticks():
            x = self._xpix_exp2(k)
            if major:
                cv.rect(x, self.y0 + 1, x + 1, self.y1, c["grid"])
                cv.rect(x, self.y1, x + 1, self.y1 + 5, c["axis"])
                if xticks_labels:
                    cv.text(x, self.y1 + 7, pow2_label(k), c["text"], align="center")
            else:
                cv.rect(x, self.y1, x + 1, self.y1 + 3, c["axis"])
        cv.frame(self.x0, self.y0, self.x1, self.y1, c["axis"])
        if xlabel:
            cv.text((self.x0 + self.x1) // 2, self.y1 + 7 + GLYPH_H + 2, xlabel, c["text"],
                    align="center")
        if ylabel:
            wmax = max([text_width(nice_num(v)) for v, m in self.y_ticks() if m] or [0])
            cv.text_up(self.x0 - 10 - wmax - GLYPH_H // 2 - 2, (self.y0 + self.y1) // 2,
                       ylabel, c["text"])

    def x_ticks(self):
        """(exponent k of 2^k, labelled?) over the x range (log2 scale only)."""
        a, b = rlog(2, self.xlim[0]), rlog(2, self.xlim[1])
        k0, k1 = int(math.ceil(a - 1e-9)), int(math.floor(b + 1e-9))
        width = self.x1 - self.x0
        per = width / (b - a)  # pixels per octave
        maxlab = max(text_width(pow2_label(k)) for k in range(k0, k1 + 1))
        step = 1
        while step * per < maxlab + 10:
            step += 1
        return [(k, k % step == 0) for k in range(k0, k1 + 1)]

    def y_ticks(self):
        """(value, labelled?) over the y range."""
        lo, hi = self.ylim
        if self.yscale == "log10":
            e0 = int(math.floor(rlog(10, lo))) - 1
            e1 = int(math.ceil(rlog(10, hi))) + 1
            span = rlog(10, hi) - rlog(10, lo)
            per = (self.y1 - self.y0) / span  # pixels per decade
            labelled = (1, 2, 5) if per >= 3.2 * GLYPH_H * 2 else (1,)
            out = []
            for e in range(e0, e1 + 1):
                for m in range(1, 10):
                    v = m * 10.0 ** e if e >= 0 else m / 10.0 ** (-e)
                    if lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9):
                        out.append((v, m in labelled))
            return out
        step = _lin_step(hi - lo, (self.y1 - self.y0) // (3 * GLYPH_H))
        out = []
        v = math.ceil(lo / step) * step
        while v <= hi * (1 + 1e-9):
            out.append((v, True))
            v += step
        return out

    def plot(self, xs, ys, color, width=2, dash=None, marker="o", filled=True, r=4):
        pts = [self.px(x, y) for x, y in zip(xs, ys)]
        cv = self.cv
        cv.set_clip(self.x0 - r - 1, self.y0 - r - 1, self.x1 + r + 2, self.y1 + r + 2)
        cv.polyline(pts, color, width, dash)
        if marker:
            for x, y in pts:
                cv.marker(x, y, marker, color, r, filled)
        cv.reset_clip()

    def hline(self, y, color, dash=(6, 4)):
        _, py = self.px(self.xlim[0], y)
        self.cv.set_clip(self.x0, self.y0, self.x1 + 1, self.y1 + 1)
        self.cv.line(self.x0, py, self.x1, py, color, 1, dash)
        self.cv.reset_clip()


def rlog(base, v):
    """log2 or log10 rounded to 9 decimals: libm's last bit may differ between
    machines; the rounded value (and so every pixel) does not, short of a
    value within an ulp of a rounding boundary."""
    return round(math.log2(v) if base == 2 else math.log10(v), 9)


def _lin_step(span, n):
    raw = span / max(1, n)
    e = math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        s = m * 10.0 ** e
        if s >= raw:
            return s
    return 10.0 ** (e + 1)


def log_limits(values, pad=0.06, base=10):
    """Limits on a log axis around positive values, padded by `pad` of the span
    (at least a fifth of a decade or octave in all)."""
    lo, hi = rlog(base, min(values)), rlog(base, max(values))
    span = max(hi - lo, 0.2)
    mid = (lo + hi) / 2
    lo, hi = min(lo, mid - span / 2), max(hi, mid + span / 2)
    lo = round(lo - pad * span, 6)
    hi = round(hi + pad * span, 6)
    return (base ** lo, base ** hi)


_FONT_REGULAR = (
    "000000000000000000000000000000080808080808080008000000001414140000000000"
    "00000000000014143e143e1414000000000000083c0a1c281e0800000000002225120808"
    "041229110000000000000609090629112e00000000080808000000000000000000001008"
    "0804040408081000000000040808101010080804000000000000120c3f0c120000000000"
    "00000008083e0808000000000000000000000000001c0c02000000000000003e00000000"
    "0000000000000000000000081c08000000202010100804040202000000000c1221212121"
    "21120c00000000080c0a08080808083e000000001e212120100c02013f000000003f2010"
    "081c2020211e000000001018141211113f1010000000003f01011d232020211e00000000"
    "1c0201011d2321211e000000003f2010080804040202000000001e2121211e2121211e00"
    "0000001e2121312e2020100e000000000000081c080000081c080000000000081c080000"
    "1c0c02000000201008040204081020000000000000003f00003f00000000000002040810"
    "2010080402000000001e2121201008080008000000001e212139253529011e000000000c"
    "122121213f212121000000001f2222221e2222221f000000001e210101010101211e0000"
    "00001f222222222222221f000000003f0101010f0101013f000000003f0101010f010101"
    "01000000001e210101013921312e00000000212121213f21212121000000003e08080808"
    "0808083e0000000038101010101010110e00000000211109050305091121000000000101"
    "0101010101013f000000002133332d2d2121212100000000212123252931212121000000"
    "001e212121212121211e000000001f2121211f01010101000000001e212121212125291e"
    "200000001f2121211f05091121000000001e2101011e2020211e000000003e0808080808"
    "0808080000000021212121212121211e000000002121211212120c0c0c00000000212121"
    "212d2d33332100000000212112120c121221210000000022221414080808080800000000"
    "3f2010080c0402013f0000001e0202020202020202021e00000002020404081010202000"
    "00001e1010101010101010101e0000000814220000000000000000000000000000000000"
    "00003f000004080000000000000000000000000000001e203e21312e000000000101011d"
    "232121231d000000000000001e210101211e000000002020202e312121312e0000000000"
    "00001e213f01211e000000001c2202020f02020202000000000000002e11110e011e211e"
    "00000101011d2321212121000000000008000c080808083e000000000020003020202020"
    "22221c0000010101110907091121000000000c080808080808083e00000000000000162a"
    "2a2a2a22000000000000001d2321212121000000000000001e212121211e000000000000"
    "001d2321231d01010100000000002e3121312e20202000000000001d2202020202000000"
    "000000001e210618211e000000000002020f020202221c0000000000000021212121312e"
    "000000000000002222221414080000000000000022222a2a2a140000000000000021120c"
    "0c122100000000000000212121312e20211e00000000003f100804023f00000038040404"
    "080608040404380000000808080808080808080000000e1010100830081010100e000000"
    "242a120000000000000000"
)

_FONT_BOLD = (
    "0000000000000000000000000000000c0c0c0c0c0c000c0c000000003636360000000000"
    "000000000014143e3e143e3e1414000000000c1e2d0d1e2c2d1e0c00000000273517180c"
    "063a2b39000000000e1b1b1b0e2b3b1b2e000000000c0c0c0c000000000000000000180c"
    "0c0606060c0c1800000000060c0c1818180c0c06000000000000120c3f3f0c1200000000"
    "0000000c0c3f3f0c0c00000000000000000000001c1c0c0600000000000000003f000000"
    "00000000000000000000000c1e0c000000303018180c06060303000000000c1233333333"
    "33120c000000000c0e0d0c0c0c0c0c3f000000001e3333301c0603033f000000003f3018"
    "0c1e3030331e0000000030383c3633333f3030000000003f03031f333030331e00000000"
    "1e3303031f3333331e000000003f303018180c0c0606000000001e3333331e3333331e00"
    "0000001e3333333e3030331e0000000000000c1e0c00000c1e0c00000000000c1e0c001c"
    "1c0c0600000030180c0603060c1830000000000000003f00003f00000000000003060c18"
    "30180c0603000000001e3333301c0c000c0c000000001e31313d353d01311e000000001e"
    "3333333f33333333000000001f3333331f3333331f000000001e330303030303331e0000"
    "00001f333333333333331f000000003f0303031f0303033f000000003f0303031f030303"
    "03000000001e3303033b3333333e00000000333333333f33333333000000003f0c0c0c0c"
    "0c0c0c3f0000000030303030303030331e0000000023331b0f070f1b3323000000000303"
    "0303030303033f0000000021333f3f333333333300000000333337373f3b3b3333000000"
    "001e333333333333331e000000001f3333331f03030303000000001e3333333333373b1e"
    "300000001f3333331f0f1b3323000000001e3303031e3030331e000000003f0c0c0c0c0c"
    "0c0c0c0000000033333333333333331e0000000033333312121e0c0c0c00000000333333"
    "33333f3f3321000000002133121e0c1e1233210000000033331e1e0c0c0c0c0c00000000"
    "3f3030180c0603033f000000001e060606060606061e00000000030306060c1818303000"
    "0000001e181818181818181e000000000c1e332100000000000000000000000000000000"
    "003f3f0000060c1800000000000000000000000000001e303e33333e000000000303031f"
    "333333331f000000000000001e330303331e000000003030303e333333333e0000000000"
    "00001e333f03331e000000001c3606060f06060606000000000000002e33331e031e331e"
    "00000303031f3333333333000000000c0c000e0c0c0c0c3f000000003030003030303030"
    "30331e0000030303331b0f0f1b33000000000e0c0c0c0c0c0c0c3f000000000000001b3f"
    "3f333333000000000000001f3333333333000000000000001e333333331e000000000000"
    "001f3333331f03030300000000003e3333333e30303000000000001f3303030303000000"
    "000000001e330618331e000000000006061f060606361c0000000000000033333333333e"
    "000000000000003333331e1e0c000000000000003333333f3f120000000000000033331e"
    "1e333300000000000000333333333e30331e00000000003f301806033f000000001c0606"
    "0c060c06061c000000000c0c0c0c0c0c0c0c0c000000000e18180c180c18180e00000000"
    "263f190000000000000000"
)

_REGULAR = _decode_font(_FONT_REGULAR)
_BOLD = _decode_font(_FONT_BOLD)
