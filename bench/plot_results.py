#!/usr/bin/env python3
"""Draw the benchmark plots docs/perf/<gpu>/*.png from bench/results/<gpu>/*.jsonl.

Usage:

    python3 bench/plot_results.py            # write the PNGs
    python3 bench/plot_results.py --check    # exit 1 if a committed PNG differs

Plots, per GPU directory of results (each only where its rows exist):

- gemm_fp8_rowwise.png, gemm_fp8_tensorwise.png, gemm_fp8_blockwise.png,
  gemm_bf16.png: TFLOP/s against M (log2) for each (N, K), llmk and each peer,
  with the row's roofline (its TFLOP/s / frac_roofline).
- attention_decode.png: time per call against context length for each cache
  format, llmk and the fastest peer (all peers read a BF16 cache), one
  colour per batch size.
- quantize.png: GB/s against M for each quantization layout measured at
  three or more M, llmk and each peer, with the copy roofline.

Every point uses the time the row's ratio uses: CUDA-graph replay where the
row says "timing": "graph", CUDA events (L2 flushed) otherwise; a row without
a peer uses its graph time where it has one.

The PNGs are drawn by bench/pngplot.py (pure Python, no plotting package), so
the same results give the same bytes on any machine: --check draws them in
memory and compares bytes with the files. A PNG under docs/perf/ that no plot
produces any more is removed (reported as out of date by --check). The README
and docs/PERFORMANCE.md link the PNGs through bench/gen_table.py.

Exit status: 0 done (or up to date with --check); 1 out of date (--check);
2 error (unreadable results).
"""

import argparse
import glob
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import gen_table  # noqa: E402
import pngplot  # noqa: E402
from pngplot import GLYPH_H, Axes, Canvas, text_width  # noqa: E402

OUT_DIR = "docs/perf"
WIDTH = 1000

PALETTE = [
    (255, 255, 255),  # 0 background
    (20, 20, 20),     # 1 text
    (85, 85, 85),     # 2 axes
    (228, 228, 228),  # 3 grid
    (75, 75, 75),     # 4 secondary text
    (0, 114, 178),    # 5 blue
    (213, 94, 0),     # 6 vermillion
    (0, 158, 115),    # 7 green
    (230, 159, 0),    # 8 orange
    (204, 121, 167),  # 9 purple
    (86, 180, 233),   # 10 sky blue
    (150, 150, 150),  # 11 roofline grey
]
BG, TEXT, AXIS, GRID, TEXT2 = 0, 1, 2, 3, 4
BLUE, VERMILLION, GREEN, ORANGE, PURPLE, SKY, ROOF = 5, 6, 7, 8, 9, 10, 11
AX_COLORS = {"axis": AXIS, "grid": GRID, "text": TEXT}
# peers in the order they are given colour and marker
SERIES = [(VERMILLION, "s"), (GREEN, "^"), (ORANGE, "D"), (PURPLE, "v"), (SKY, "o")]
BATCH = [(BLUE, "o"), (VERMILLION, "s"), (GREEN, "^"), (ORANGE, "D"), (PURPLE, "v")]


# ---------------------------------------------------------------- data


def used_times(r):
    """(llmk us, peer us or None) as the row's ratio compares them."""
    timing = r.get("timing")
    num = gen_table.is_num
    if timing == "graph" and num(r.get("llmk_us_graph")) and num(r.get("peer_us_graph")):
        return float(r["llmk_us_graph"]), float(r["peer_us_graph"])
    peer = float(r["peer_us"]) if r.get("peer") is not None and num(r.get("peer_us")) else None
    if peer is None and num(r.get("llmk_us_graph")) and r["llmk_us_graph"] > 0:
        return float(r["llmk_us_graph"]), None
    return float(r["llmk_us"]), peer


def bench_time(r):
    """The llmk time the bench's own measures (tflops, frac_*) were computed from."""
    if gen_table.is_num(r.get("llmk_us_graph")) and r["llmk_us_graph"] > 0:
        return float(r["llmk_us_graph"])
    return float(r["llmk_us"])


def rows_of(results, gpu, pred):
    """(rows of `gpu` whose op satisfies pred, their results files)."""
    out = []
    src = []
    for g, family, rel, rows, devices in results:
        # the general set's rows (bench/peer_gemm_general.py) have their own summary, not these plots
        if g != gpu or family.endswith("_general"):
            continue
        mine = [r for r in rows if pred(str(r.get("op", "")))]
        if mine:
            out += mine
            src.append(rel)
    return out, src


def devices_of(rows):
    d = []
    for r in rows:
        if r.get("device") and r["device"] not in d:
            d.append(r["device"])
    return ", ".join(d)


def positive(v):
    return gen_table.is_num(v) and v > 0


# ---------------------------------------------------------------- drawing helpers


def legend_item(cv, x, y, color, label, marker="o", filled=True, dash=None, width=2):
    """A sample line with its marker and label at (x, y) (text top); returns the end x."""
    my = y + GLYPH_H // 2
    cv.line(x, my, x + 26, my, color, width, dash)
    if marker:
        cv.marker(x + 13, my, marker, color, 4, filled)
    cv.text(x + 32, y, label, TEXT)
    return x + 32 + text_width(label) + 18


def legend_row(cv, x, y, items, right=WIDTH - 12):
    """Lay items out left to right, wrapping at `right`; returns the y below."""
    for it in items:
        w = 32 + text_width(it["label"]) + 18
        if x + w > right and x > 12:
            x = 12
            y += GLYPH_H + 6
        x = legend_item(cv, x, y, it["color"], it["label"], it.get("marker", "o"),
                        it.get("filled", True), it.get("dash"), it.get("width", 2))
    return y + GLYPH_H + 6


def header(cv, title, note, items):
    cv.text(12, 8, title, TEXT, bold=True)
    y = 8 + GLYPH_H + 4
    for line in note:
        cv.text(12, y, line, TEXT2)
        y += GLYPH_H + 2
    y += 4
    return legend_row(cv, 12, y, items) + 4


def grid_boxes(top, ncols, nrows, panel_h, left=14, right=WIDTH - 10, ylab_w=52,
               title_h=GLYPH_H + 6, xlab_h=2 * GLYPH_H + 20, gap=14):
    """Plot-area boxes (x0, y0, x1, y1) of an ncols x nrows grid starting at y=top."""
    cw = (right - left) / float(ncols)
    boxes = []
    for row in range(nrows):
        for col in range(ncols):
            cx = left + int(cw * col)
            x0 = cx + ylab_w
            x1 = left + int(cw * (col + 1)) - gap
            y0 = top + row * (title_h + panel_h + xlab_h) + title_h
            boxes.append((x0, y0, x1, y0 + panel_h))
    height = top + nrows * (title_h + panel_h + xlab_h) + 4
    return boxes, height


def panel_title(cv, box, s):
    cv.text((box[0] + box[2]) // 2, box[1] - GLYPH_H - 4, s, TEXT, bold=True, align="center")


def common_log_limits(values, base=10, pad=0.06):
    vals = [v for v in values if v and v > 0]
    if not vals:
        return (1.0, 10.0)
    return pngplot.log_limits(vals, pad, base)


def pow2_limits(xs, pad_octaves=0.35):
    lo, hi = pngplot.rlog(2, min(xs)), pngplot.rlog(2, max(xs))
    if hi - lo < 1:
        lo, hi = lo - 0.5, hi + 0.5
    return (2.0 ** round(lo - pad_octaves, 6), 2.0 ** round(hi + pad_octaves, 6))


# ---------------------------------------------------------------- GEMM


GEMM_TITLES = {
    "gemm_fp8_rowwise": "FP8 GEMM, row-wise scales",
    "gemm_fp8_tensorwise": "FP8 GEMM, tensor-wise scales",
    "gemm_fp8_blockwise": "FP8 GEMM, block-wise scales (1x128 activations, 128x128 weights)",
    "gemm_bf16": "BF16 GEMM",
}


def gemm_series(rows):
    """({(n, k): {"llmk": {m: TFLOP/s}, "roof": {m: TFLOP/s}, "peers": {peer: {m: TFLOP/s}}}},
    peer names), panels in file order."""
    panels = {}
    peers = []
    for r in rows:
        s = r.get("shape") or {}
        if not all(gen_table.is_num(s.get(k)) for k in ("m", "n", "k")):
            continue
        m, n, k = s["m"], s["n"], s["k"]
        flops = 2.0 * m * n * k
        p = panels.setdefault((n, k), {"llmk": {}, "roof": {}, "peers": {}})
        t_llmk, t_peer = used_times(r)
        p["llmk"][m] = flops / t_llmk / 1e6
        if positive(r.get("frac_roofline")):
            p["roof"][m] = flops / bench_time(r) / 1e6 / float(r["frac_roofline"])
        if t_peer:
            name = str(r["peer"])
            if name not in peers:
                peers.append(name)
            p["peers"].setdefault(name, {})[m] = flops / t_peer / 1e6
    return panels, peers


def draw_gemm(results, gpu, op):
    rows, src = rows_of(results, gpu, lambda o: o == op)
    panels, peers = gemm_series(rows)
    if not panels:
        return None
    keys = list(panels)
    ncols = 4 if len(keys) > 3 else len(keys)
    nrows = (len(keys) + ncols - 1) // ncols
    items = [{"color": BLUE, "label": "llmk"}]
    for i, p in enumerate(peers):
        c, mk = SERIES[i % len(SERIES)]
        items.append({"color": c, "label": p, "marker": mk})
    items.append({"color": ROOF, "label": "roofline (measured peak, copy bandwidth)",
                  "marker": None, "dash": (5, 4), "width": 1})
    title = "%s: TFLOP/s against M, %s" % (GEMM_TITLES.get(op, op), devices_of(rows) or gpu)
    note = ["From %s. Each panel one weight shape (N x K); M = tokens. Small M: CUDA-graph "
            "replay," % ", ".join(src),
            "larger M: CUDA events with L2 flushed; llmk and peer timed the same way in "
            "the same run."]
    # measure the header first on a scratch canvas to size the figure
    top = header(Canvas(WIDTH, 200, PALETTE), title, note, items)
    boxes, height = grid_boxes(top + 6, ncols, nrows, 190)
    cv = Canvas(WIDTH, height, PALETTE)
    header(cv, title, note, items)
    allx = [m for p in panels.values() for m in p["llmk"]]
    xlim = pow2_limits(allx)
    for i, key in enumerate(keys):
        p = panels[key]
        vals = list(p["llmk"].values()) + list(p["roof"].values())
        for s in p["peers"].values():
            vals += list(s.values())
        ylim = common_log_limits(vals, pad=0.08)
        box = boxes[i]
        ax = Axes(cv, box, "log2", xlim, "log10", ylim, AX_COLORS)
        last_row = i // ncols == nrows - 1 or i + ncols >= len(keys)
        ax.draw_frame(xlabel="M" if last_row else None,
                      ylabel="TFLOP/s" if i % ncols == 0 else None)
        panel_title(cv, box, "N=%d K=%d" % key)
        if p["roof"]:
            ms = sorted(p["roof"])
            ax.plot(ms, [p["roof"][m] for m in ms], ROOF, width=1, dash=(5, 4), marker=None)
        for j, name in enumerate(peers):
            s = p["peers"].get(name)
            if s:
                c, mk = SERIES[j % len(SERIES)]
                ms = sorted(s)
                ax.plot(ms, [s[m] for m in ms], c, marker=mk)
        ms = sorted(p["llmk"])
        ax.plot(ms, [p["llmk"][m] for m in ms], BLUE, marker="o")
    return cv


# ---------------------------------------------------------------- decode attention


FORMAT_RANK = {"bf16": 0, "fp8": 1, "fp8_tensor": 2, "int4": 3}


def attention_format(r):
    fmt = str(r.get("format") or "?")
    label = fmt + " cache"
    if gen_table.is_num(r.get("int4_group")):
        label = "%s cache, groups of %d" % (fmt, r["int4_group"])
    if positive(r.get("page_size")):
        label += ", pages of %d tokens" % r["page_size"]
    return label


def draw_attention(results, gpu):
    rows, src = rows_of(results, gpu, lambda o: o == "attention_decode")
    # format -> batch -> t -> (llmk us, best peer us)
    fmts = {}
    order = {}
    peers = []
    batches = []
    for r in rows:
        s = r.get("shape") or {}
        if not (positive(s.get("t")) and positive(s.get("b"))):
            continue
        key = attention_format(r)
        if key not in fmts:
            order[key] = (FORMAT_RANK.get(str(r.get("format")), len(FORMAT_RANK)),
                          r.get("page_size") if positive(r.get("page_size")) else 0,
                          r.get("int4_group") if positive(r.get("int4_group")) else 0)
        f = fmts.setdefault(key, {})
        b, t = s["b"], s["t"]
        if b not in batches:
            batches.append(b)
        t_llmk, t_peer = used_times(r)
        cur = f.setdefault(b, {}).get(t)
        best = cur[1] if cur else None
        if t_peer and (best is None or t_peer < best):
            best = t_peer
        f[b][t] = (t_llmk, best)
        if r.get("peer") is not None and str(r["peer"]) not in peers:
            peers.append(str(r["peer"]))
    if not fmts:
        return None
    batches.sort()
    keys = sorted(fmts, key=lambda k: order[k])  # stable: file order within a rank
    ncols = 3 if len(keys) > 2 else len(keys)
    nrows = (len(keys) + ncols - 1) // ncols
    items = []
    for i, b in enumerate(batches):
        c, mk = BATCH[i % len(BATCH)]
        items.append({"color": c, "label": "llmk, batch %d" % b, "marker": "o"})
    for i, b in enumerate(batches):
        c, mk = BATCH[i % len(BATCH)]
        items.append({"color": c, "label": "peer, batch %d" % b, "marker": "s",
                      "filled": False, "dash": (6, 4)})
    title = "Decode attention: time per call against context length, %s" % (
        devices_of(rows) or gpu)
    peer_text = gen_table.peer_names([gen_table.short_peer(p) for p in peers]) or "none"
    note = ["From %s. Heads: %s. CUDA-graph replay (caches rotated, not in L2)." % (
                ", ".join(src), shape_note(rows)),
            "Peer = the fastest of %s, on a BF16 cache in every panel. Lower is "
            "better." % peer_text]
    top = header(Canvas(WIDTH, 200, PALETTE), title, note, items)
    boxes, height = grid_boxes(top + 6, ncols, nrows, 200)
    cv = Canvas(WIDTH, height, PALETTE)
    header(cv, title, note, items)
    allt = [t for f in fmts.values() for bb in f.values() for t in bb]
    xlim = pow2_limits(allt)
    allv = [v for f in fmts.values() for bb in f.values() for pair in bb.values()
            for v in pair if v]
    ylim = common_log_limits(allv, pad=0.05)
    for i, key in enumerate(keys):
        box = boxes[i]
        ax = Axes(cv, box, "log2", xlim, "log10", ylim, AX_COLORS)
        ax.draw_frame(xlabel="context length (tokens)",
                      ylabel="us per call" if i % ncols == 0 else None)
        panel_title(cv, box, key)
        for j, b in enumerate(batches):
            series = fmts[key].get(b)
            if not series:
                continue
            c, _ = BATCH[j % len(BATCH)]
            ts = sorted(series)
            pts = [(t, series[t][1]) for t in ts if series[t][1]]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], c, dash=(6, 4), marker="s",
                        filled=False)
            ax.plot(ts, [series[t][0] for t in ts], c, marker="o")
    return cv


def shape_note(rows):
    """Shape keys other than b and t that are the same in every row, e.g. 'hq=64 hkv=8 d=128'."""
    fixed = None
    for r in rows:
        s = {k: v for k, v in (r.get("shape") or {}).items() if k not in ("b", "t")}
        if fixed is None:
            fixed = dict(s)
        else:
            fixed = {k: v for k, v in fixed.items() if s.get(k) == v}
    return " ".join("%s=%s" % kv for kv in (fixed or {}).items()) or "as in the table"


# ---------------------------------------------------------------- quantization


def quantize_series(rows):
    """{op label: {"llmk": {m: GB/s}, "peers": {name: {m: GB/s}}, "roof": GB/s}} for
    ops measured at 3+ M (the most common K, the most common input dtype)."""
    by_op = {}
    for r in rows:
        s = r.get("shape") or {}
        if not (positive(s.get("m")) and positive(s.get("k"))):
            continue
        if not (positive(r.get("gbps")) and positive(r.get("llmk_us"))):
            continue
        by_op.setdefault(str(r["op"]), []).append(r)
    out = {}
    peers = []
    for op, rs in by_op.items():
        ks = [r["shape"]["k"] for r in rs]
        k = max(sorted(set(ks)), key=ks.count)
        dts = [str(r.get("dtype")) for r in rs]
        dt = max(sorted(set(dts)), key=dts.count)
        rs = [r for r in rs if r["shape"]["k"] == k and str(r.get("dtype")) == dt]
        if len({r["shape"]["m"] for r in rs}) < 3:
            continue
        d = {"llmk": {}, "peers": {}, "roof": [], "k": k, "dtype": dt}
        for r in rs:
            m = r["shape"]["m"]
            nbytes = float(r["gbps"]) * float(r["llmk_us"]) * 1e3  # as the bench counts them
            t_llmk, t_peer = used_times(r)
            d["llmk"][m] = nbytes / t_llmk / 1e3
            if t_peer:
                name = str(r["peer"])
                if name not in peers:
                    peers.append(name)
                d["peers"].setdefault(name, {})[m] = nbytes / t_peer / 1e3
            if positive(r.get("copy_gbps")):
                d["roof"].append(float(r["copy_gbps"]))
        out[op] = d
    return out, peers


def draw_quantize(results, gpu):
    rows, src = rows_of(results, gpu, is_quantize)
    ops, peers = quantize_series(rows)
    if not ops:
        return None
    keys = list(ops)
    ncols = min(3, len(keys))
    nrows = (len(keys) + ncols - 1) // ncols
    items = [{"color": BLUE, "label": "llmk"}]
    for i, p in enumerate(peers):
        c, mk = SERIES[i % len(SERIES)]
        items.append({"color": c, "label": p, "marker": mk})
    items.append({"color": ROOF, "label": "device copy (roofline)", "marker": None,
                  "dash": (5, 4), "width": 1})
    title = "FP8 quantization: GB/s against M, %s" % (devices_of(rows) or gpu)
    note = ["From %s. GB/s = bytes the layout must move (as the table counts them) / time; "
            "small M:" % ", ".join(src),
            "CUDA-graph replay, larger M: CUDA events with L2 flushed. Higher is better."]
    top = header(Canvas(WIDTH, 200, PALETTE), title, note, items)
    boxes, height = grid_boxes(top + 6, ncols, nrows, 200)
    cv = Canvas(WIDTH, height, PALETTE)
    header(cv, title, note, items)
    prefix = gen_table.common_prefix(keys)
    allm = [m for d in ops.values() for m in d["llmk"]]
    xlim = pow2_limits(allm)
    allv = [v for d in ops.values() for v in list(d["llmk"].values()) + d["roof"]]
    allv += [v for d in ops.values() for s in d["peers"].values() for v in s.values()]
    ylim = common_log_limits(allv, pad=0.05)
    for i, op in enumerate(keys):
        d = ops[op]
        box = boxes[i]
        ax = Axes(cv, box, "log2", xlim, "log10", ylim, AX_COLORS)
        ax.draw_frame(xlabel="M (rows)", ylabel="GB/s" if i % ncols == 0 else None)
        panel_title(cv, box, "%s, %s in, K=%d" % (op[len(prefix):] or op, d["dtype"], d["k"]))
        if d["roof"]:
            ax.hline(gen_table.median(d["roof"]), ROOF, dash=(5, 4))
        for j, name in enumerate(peers):
            s = d["peers"].get(name)
            if s:
                c, mk = SERIES[j % len(SERIES)]
                ms = sorted(s)
                ax.plot(ms, [s[m] for m in ms], c, marker=mk)
        ms = sorted(d["llmk"])
        ax.plot(ms, [d["llmk"][m] for m in ms], BLUE, marker="o")
    return cv


# ---------------------------------------------------------------- plan


def has_op(results, gpu, pred):
    return bool(rows_of(results, gpu, pred)[0])


def is_quantize(op):
    return op.startswith("quantize_")


def plan(results):
    """The plots the results give: dicts with gpu, name, path (relative to the
    repository root), alt (text), readme (shown in README.md) and draw (a
    function returning a Canvas, or None when it has nothing to draw)."""
    gpus = []
    for g, _, _, _, _ in results:
        if g not in gpus:
            gpus.append(g)
    out = []
    for gpu in gpus:
        def add(name, alt, readme, draw):
            out.append({"gpu": gpu, "name": name, "path": "%s/%s/%s.png" % (OUT_DIR, gpu, name),
                        "alt": "%s (%s)" % (alt, gpu), "readme": readme, "draw": draw})
        for op in ("gemm_fp8_rowwise", "gemm_fp8_tensorwise", "gemm_fp8_blockwise",
                   "gemm_bf16"):
            if has_op(results, gpu, lambda o, op=op: o == op):
                add(op, "%s: TFLOP/s against M for each N x K, llmk and peers"
                    % GEMM_TITLES[op], op == "gemm_fp8_rowwise",
                    lambda gpu=gpu, op=op: draw_gemm(results, gpu, op))
        if has_op(results, gpu, lambda o: o == "attention_decode"):
            add("attention_decode", "Decode attention: time per call against context length "
                "for each cache format, llmk and the fastest peer", True,
                lambda gpu=gpu: draw_attention(results, gpu))
        if has_op(results, gpu, is_quantize) and \
                quantize_series(rows_of(results, gpu, is_quantize)[0])[0]:
            add("quantize", "FP8 quantization: GB/s against M, llmk and peers", False,
                lambda gpu=gpu: draw_quantize(results, gpu))
    return out


def render(results):
    """{path: PNG bytes} for every plot that has something to draw."""
    out = {}
    for fig in plan(results):
        cv = fig["draw"]()
        if cv is not None:
            out[fig["path"]] = cv.png()
    return out


def main():
    ap = argparse.ArgumentParser(description="Draw docs/perf/<gpu>/*.png from "
                                 "bench/results/<gpu>/*.jsonl.")
    ap.add_argument("--check", action="store_true",
                    help="do not write; exit 1 if a PNG under docs/perf/ differs from what "
                         "the results give, is missing, or is left over")
    ap.add_argument("--root", default=os.path.dirname(HERE),
                    help="repository root (default: the parent of bench/)")
    args = ap.parse_args()
    try:
        results = gen_table.load_results(args.root)
        pngs = render(results)
    except gen_table.GenError as e:
        print("plot_results: error: %s" % e, file=sys.stderr)
        return 2
    status = 0
    for rel in sorted(pngs):
        path = os.path.join(args.root, rel)
        data = pngs[rel]
        try:
            with open(path, "rb") as f:
                old = f.read()
        except OSError:
            old = None
        if old == data:
            print("plot_results: %s is up to date (%d bytes)" % (rel, len(data)))
            continue
        if args.check:
            print("plot_results: %s is %s; run python3 bench/plot_results.py"
                  % (rel, "missing" if old is None else "out of date"), file=sys.stderr)
            status = 1
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        print("plot_results: wrote %s (%d bytes)" % (rel, len(data)))
    pattern = os.path.join(args.root, OUT_DIR, "**", "*.png")
    for path in sorted(glob.glob(pattern, recursive=True)):
        rel = os.path.relpath(path, args.root).replace(os.sep, "/")
        if rel in pngs:
            continue
        if args.check:
            print("plot_results: %s is no longer produced by the results; run python3 "
                  "bench/plot_results.py" % rel, file=sys.stderr)
            status = 1
        else:
            os.remove(path)
            print("plot_results: removed %s" % rel)
    return status


if __name__ == "__main__":
    sys.exit(main())
