#!/usr/bin/env python3
"""Merge llmk's benchmark rows with peer rows into one results file.

Usage:

    python3 bench/merge_results.py --llmk LLMK.jsonl --peer PEER.jsonl \\
        --commit SHA --out bench/results/h100/quantize.jsonl

LLMK.jsonl holds `llmk bench` rows, e.g.
  {"op": "quantize_fp8_row", "device": "...", "shape": {"m": 16, "k": 8192},
   "dtype": "bf16", "llmk_us": 4.1, "llmk_us_graph": 2.9, "backend": "own",
   "gbps": 96.0, "copy_gbps": 3000.0, "frac_copy": 0.03}
PEER.jsonl holds peer-script rows (bench/peer_*.py), e.g.
  {"op": "quantize_fp8_row", "device": "...", "shape": {"m": 16, "k": 8192},
   "dtype": "bf16", "peer": "torch eager", "peer_us": 21.3, "peer_us_graph": 9.8}

For every llmk row and every peer row with the same op, shape and dtype, one
merged row is written with the keys of docs/DESIGN.md "Benchmarking":
  op, device, commit, shape, dtype, llmk_us, backend, peer, peer_us, ratio,
  timing, gbps or tflops, frac_copy
(plus llmk_us_graph, peer_us_graph, copy_gbps, peer_gbps, peer_version where
known, and the llmk-row keys named by --keep, e.g. --keep format,page_size for
attention rows, whose cache format is not part of the match key).
ratio = peer_us / llmk_us, above 1 means llmk is faster. When both rows carry a CUDA-graph time (*_us_graph), the ratio uses those and the row
says "timing": "graph"; otherwise "timing": "events". llmk rows with no
matching peer are written with peer, peer_us and ratio null. Peer rows with no
llmk row are reported on stderr and not written.

Rows from different devices are never merged: a device mismatch is an error.
The output file is overwritten (it is the record of one run). Exit status: 0 ok,
2 bad input.
"""

import argparse
import json
import os
import sys
import tempfile


class InputError(Exception):
    pass


def read_jsonl(path, required):
    rows = []
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        raise InputError("%s: %s" % (path, e.strerror or e))
    with f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                raise InputError("%s:%d: not JSON (%s)" % (path, n, e))
            if not isinstance(row, dict):
                raise InputError("%s:%d: expected a JSON object" % (path, n))
            missing = [k for k in required if k not in row]
            if missing:
                raise InputError("%s:%d: missing key(s) %s" % (path, n, ", ".join(missing)))
            if not isinstance(row["shape"], dict) or not row["shape"]:
                raise InputError("%s:%d: \"shape\" must be a non-empty object" % (path, n))
            for k in required:
                if k.endswith("_us") and not (isinstance(row[k], (int, float))
                                             and not isinstance(row[k], bool) and row[k] > 0):
                    raise InputError("%s:%d: \"%s\" must be a positive number" % (path, n, k))
            row["_line"] = n
            rows.append(row)
    return rows


def key_of(row):
    shape = tuple(sorted((str(k), json.dumps(v)) for k, v in row["shape"].items()))
    return (row["op"], shape, row["dtype"])


def positive(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0


def merged_row(lr, pr, commit, keep=()):
    out = {
        "op": lr["op"],
        "device": lr["device"],
        "commit": commit,
        "shape": lr["shape"],
        "dtype": lr["dtype"],
        "llmk_us": lr["llmk_us"],
    }
    if "fp8" in lr:
        out["fp8"] = lr["fp8"]
    if positive(lr.get("llmk_us_graph")):
        out["llmk_us_graph"] = lr["llmk_us_graph"]
    out["backend"] = lr["backend"]
    if pr is None:
        out["peer"] = None
        out["peer_us"] = None
        out["ratio"] = None
        out["timing"] = None
    else:
        out["peer"] = pr["peer"]
        out["peer_us"] = pr["peer_us"]
        if positive(pr.get("peer_us_graph")):
            out["peer_us_graph"] = pr["peer_us_graph"]
        if "llmk_us_graph" in out and "peer_us_graph" in out:
            out["ratio"] = round(out["peer_us_graph"] / out["llmk_us_graph"], 3)
            out["timing"] = "graph"
        else:
            out["ratio"] = round(out["peer_us"] / out["llmk_us"], 3)
            out["timing"] = "events"
    for k in ("tflops", "gbps", "copy_gbps", "frac_copy", "frac_roofline", "peak_tflops", "accum"):
        if k in lr:
            out[k] = lr[k]
    for k in keep:
        if k in lr and k not in out:
            out[k] = lr[k]
    if pr is not None:
        if "gbps" in pr:
            out["peer_gbps"] = pr["gbps"]
        if "tflops" in pr:
            out["peer_tflops"] = pr["tflops"]
        if "peer_version" in pr:
            out["peer_version"] = pr["peer_version"]
    return out


def write_atomic(path, rows):
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".merge-", suffix=".jsonl", dir=d)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main():
    ap = argparse.ArgumentParser(
        description="Merge llmk bench rows with peer rows (docs/DESIGN.md Benchmarking).")
    ap.add_argument("--llmk", required=True, help="llmk bench rows (JSON lines)")
    ap.add_argument("--peer", required=True, help="peer script rows (JSON lines)")
    ap.add_argument("--commit", required=True, help="llmk commit the llmk rows were measured at")
    ap.add_argument("--out", required=True, help="merged JSON-lines file (overwritten)")
    ap.add_argument("--keep", default="",
                    help="comma-separated llmk-row keys also copied into the merged rows "
                         "(where present), e.g. format,page_size,int4_group")
    args = ap.parse_args()
    keep = [k.strip() for k in args.keep.split(",") if k.strip() and not k.strip().startswith("_")]

    commit = args.commit.strip()
    if not commit:
        ap.error("--commit must not be empty")

    try:
        lrows = read_jsonl(args.llmk, ("op", "device", "shape", "dtype", "llmk_us", "backend"))
        prows = read_jsonl(args.peer, ("op", "device", "shape", "dtype", "peer", "peer_us"))
    except InputError as e:
        print("merge_results: error: %s" % e, file=sys.stderr)
        return 2
    if not lrows:
        print("merge_results: error: %s has no rows" % args.llmk, file=sys.stderr)
        return 2

    devices = {r["device"] for r in lrows} | {r["device"] for r in prows}
    if len(devices) > 1:
        print("merge_results: error: rows come from different devices (%s); ratios must "
              "compare runs on the same GPU" % ", ".join(sorted(devices)), file=sys.stderr)
        return 2

    peers_by_key = {}
    for pr in prows:
        peers_by_key.setdefault(key_of(pr), []).append(pr)

    out_rows = []
    used = set()
    n_matched = n_alone = 0
    for lr in lrows:
        matches = peers_by_key.get(key_of(lr), [])
        if not matches:
            out_rows.append(merged_row(lr, None, commit, keep))
            n_alone += 1
            continue
        for pr in matches:
            out_rows.append(merged_row(lr, pr, commit, keep))
            used.add(id(pr))
            n_matched += 1

    unused = [pr for pr in prows if id(pr) not in used]
    if unused:
        print("merge_results: note: %d peer row(s) had no llmk row and were not written, e.g. "
              "%s:%d %s %s %s" % (len(unused), args.peer, unused[0]["_line"], unused[0]["op"],
                                 json.dumps(unused[0]["shape"]), unused[0]["peer"]),
              file=sys.stderr)

    write_atomic(args.out, out_rows)
    print("merge_results: wrote %d row(s) to %s (%d with a peer, %d llmk row(s) without one)"
          % (len(out_rows), args.out, n_matched, n_alone))
    return 0


if __name__ == "__main__":
    sys.exit(main())
