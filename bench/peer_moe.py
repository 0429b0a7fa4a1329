#!/usr/bin/env python3
"""The MoE ops around the grouped GEMM against FBGEMM GenAI's, in one run,
under CUDA graphs, the L2 flushed before every replay (peer_common.Timer):

  route+permute   llmk.moe_route_permute (one call)        against
                  fbgemm.index_shuffling (top-k and the expert sort in one
                  op; given its sigmoid scores, not timed)
  gather+quant    llmk.moe_gather_quant (FP8, one scale a row)  against
                  fbgemm gather_scale_quant_dense_tokens (which also
                  multiplies each row by its score)
  route+permute+gather  the two above in a row, each side
  combine         llmk.moe_combine (the k rows of a token, weighted, in
                  slot order)  against  fbgemm.scatter_add_along_first_dim
                  (the rows added into a zeroed output, unweighted)

Shapes: DeepSeek-V3 (256 experts, top 8, H 7168; all experts local here)
and Llama 4 Scout (16 experts, top 1, H 5120) at 16 to 16384 tokens. Each
llmk row is checked first: the routing against torch's sigmoid and topk,
the permutation against a stable argsort, the gather against
llmk.quantize_fp8_per_row of the gathered rows (bit for bit), the combine
against an fp64 sum. Rows go to --out (JSON lines): op, model, tokens,
experts, topk, hidden, llmk_us, peers {name: us}, best_peer, x_best, gbps
(gather and combine, on the bytes they must move), frac_copy, commit.

    python3 bench/peer_moe.py --out moe_ops.jsonl
    python3 bench/peer_moe.py --dry-run
    python3 bench/peer_moe.py --summary moe_ops.jsonl
"""
import argparse
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_common as pc  # noqa: E402

MODELS = {"deepseek-v3": dict(experts=256, topk=8, hidden=7168, router="deepseek"),
          "llama4-scout": dict(experts=16, topk=1, hidden=5120, router="sigmoid_topk")}
TOKENS = (16, 128, 4096, 16384)
OPS = ("route_permute", "gather_quant", "route_permute_gather", "combine")


def plan(args):
    return [(m, t) for m in args.models for t in args.tokens]


def dry_run(args):
    rows = plan(args)
    for m, t in rows:
        print("%-14s tokens %6d: %s" % (m, t, ", ".join(OPS)))
    print("rows: %d" % (len(rows) * len(OPS)))
    return 0


def summarize(paths):
    rows = pc.read_jsonl_rows(paths, lambda r: r.get("op", "").startswith("moe_"),
                              lambda r: (r["op"], r.get("model"), r.get("tokens")))
    by_op = {}
    for r in rows:
        by_op.setdefault(r["op"], []).append(r)
    out = {}
    for op, rs in by_op.items():
        xs = [r["x_best"] for r in rs if r.get("x_best")]
        out[op] = {"rows": len(rs), "with_peer": len(xs),
                   "x_best": math.exp(sum(map(math.log, xs)) / len(xs)) if xs else None,
                   "below_1": sum(x < 1.0 for x in xs)}
    return out


def print_summary(s):
    for op, v in s.items():
        print("%-22s rows %3d, with a peer %3d, geomean x_best %s, below 1.0: %d" %
              (op, v["rows"], v["with_peer"], "%.3f" % v["x_best"] if v["x_best"] else "-", v["below_1"]))


def run(args):
    torch = pc.load_torch()
    import llmk
    fb = None
    if not args.no_fbgemm:
        try:
            import fbgemm_gpu.experimental.gen_ai  # noqa: F401  (registers torch.ops.fbgemm.*)
            from fbgemm_gpu.experimental.gen_ai.moe import gather_scale_quant_dense_tokens
            fb = (torch.ops.fbgemm.index_shuffling, gather_scale_quant_dense_tokens,
                  torch.ops.fbgemm.scatter_add_along_first_dim)
        except Exception as e:  # noqa: BLE001  (a peer that does not load is recorded as missing)
            pc.note("FBGEMM did not load: %s" % pc.brief_exc(e), err=True)
    timer = pc.Timer(args.reps, 3, 10, args.reps)
    cm, ck, copy_us, _ = pc.time_large_copy(timer, 1.0)
    copy_gbps = 2.0 * 2 * cm * ck / copy_us / 1e3
    commit = args.commit or os.environ.get("LLMK_COMMIT", "unknown")
    dev = torch.cuda.get_device_name()
    out = open(args.out, "w", encoding="utf-8")
    torch.manual_seed(args.seed)
    for m, T in plan(args):
        cfg = MODELS[m]
        E, k, H = cfg["experts"], cfg["topk"], cfg["hidden"]
        logits = torch.randn(T, E, device="cuda")
        bias = torch.randn(E, device="cuda") * 0.1 if cfg["router"] == "deepseek" else None
        x = torch.randn(T, H, device="cuda", dtype=torch.bfloat16)
        rkw = dict(renormalize=cfg["router"] == "deepseek", bias=bias,
                   n_group=8 if cfg["router"] == "deepseek" else 1, topk_group=4 if cfg["router"] == "deepseek" else 1)
        ids, w = llmk.moe_route(logits, k, cfg["router"], **rkw)
        sizes, offsets, row_of, src_of = llmk.moe_permute(ids, E)
        xq, xs = llmk.moe_gather_quant(x, src_of, k)
        y = torch.randn(T * k, H, device="cuda", dtype=torch.bfloat16)
        comb = llmk.moe_combine(y, row_of, w)
        # checks first
        ok = True
        if cfg["router"] == "sigmoid_topk":
            ok &= bool(torch.equal(ids.long(), logits.topk(k, -1)[1]))
        flat = ids.view(-1).long()
        ok &= bool(torch.equal(src_of.long(), torch.argsort(flat, stable=True)))
        rq, rs = llmk.quantize_fp8_per_row(x[(src_of // k).long()])
        ok &= bool(torch.equal(xq.view(torch.uint8), rq.view(torch.uint8)) and torch.equal(xs, rs.view(-1)))
        ref = (y[row_of.view(-1).long()].double().view(T, k, H) * w.double()[..., None]).sum(1)
        ok &= bool(torch.allclose(comb.double(), ref, rtol=1e-2, atol=1e-2))
        scores = torch.sigmoid(logits)
        peers = {}
        if fb:
            try:
                counts, e_idx, t_idx = fb[0](scores, top_k=k)
                peers["route_permute"] = ("fbgemm.index_shuffling", lambda: fb[0](scores, top_k=k))
                peers["gather_quant"] = ("fbgemm.gather_scale_quant_dense_tokens",
                                         lambda: fb[1](x, t_idx.flatten(), e_idx.flatten(), scores))
                dst = torch.zeros(T, H, device="cuda", dtype=torch.bfloat16)
                idx = t_idx.flatten()[: T * k].contiguous()

                def scatter():
                    dst.zero_()
                    fb[2](dst, y[: idx.shape[0]], idx)
                peers["combine"] = ("fbgemm.scatter_add_along_first_dim (+ zeroing)", scatter)
            except Exception as e:  # noqa: BLE001
                pc.note("%s tokens %d: FBGEMM: %s" % (m, T, pc.brief_exc(e)), err=True)
        rp = llmk.moe_route_permute(logits, k, E, cfg["router"], **rkw)
        ok &= all(bool(torch.equal(a, b)) for a, b in zip(rp, (ids, w, sizes, offsets, row_of, src_of)))
        if fb and "gather_quant" in peers:
            peers["route_permute_gather"] = ("fbgemm.index_shuffling + gather_scale_quant_dense_tokens",
                                             lambda: fb[1](x, *[v.flatten() for v in fb[0](scores, top_k=k)[2:0:-1]],
                                                           scores))

        def route_permute_gather():
            r = llmk.moe_route_permute(logits, k, E, cfg["router"], **rkw)
            return llmk.moe_gather_quant(x, r[5], k)
        mine = {"route_permute": lambda: llmk.moe_route_permute(logits, k, E, cfg["router"], **rkw),
                "gather_quant": lambda: llmk.moe_gather_quant(x, src_of, k),
                "route_permute_gather": route_permute_gather,
                "combine": lambda: llmk.moe_combine(y, row_of, w)}
        bytes_moved = {"gather_quant": 3.0 * T * k * H, "combine": 2.0 * (T * k + T) * H}
        for op in OPS:
            us, _ = timer.graph(mine[op])
            row = {"op": "moe_" + op, "device": dev, "model": m, "tokens": T, "experts": E, "topk": k, "hidden": H,
                   "shape": {"model": m, "tokens": T, "experts": E, "topk": k, "hidden": H},
                   "llmk_us": pc.rnd(us), "ok": ok, "commit": commit, "peers": {}}
            if op in peers:
                name, fn = peers[op]
                try:
                    row["peers"][name] = pc.rnd(timer.graph(fn)[0])
                except Exception as e:  # noqa: BLE001
                    pc.note("%s %s tokens %d: %s" % (name, m, T, pc.brief_exc(e)), err=True)
            if row["peers"]:
                best = min(row["peers"], key=row["peers"].get)
                row["best_peer"], row["x_best"] = best, pc.rnd(row["peers"][best] / us)
                # the results files' form (bench/gen_table.py): one peer, its time, the ratio
                row["peer"], row["peer_us"], row["ratio"] = best, row["peers"][best], row["x_best"]
            if op in bytes_moved:
                row["gbps"] = pc.rnd(bytes_moved[op] / us / 1e3, 1)
                row["frac_copy"] = pc.rnd(row["gbps"] / copy_gbps)
            out.write(json.dumps(row) + "\n")
            out.flush()
            print("%-14s %-14s T %6d  llmk %9.1f us  %s" % (m, op, T, us, row["peers"]))
    out.close()
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="JSON-lines output file (overwritten)")
    ap.add_argument("--models", type=lambda s: s.split(","), default=list(MODELS))
    ap.add_argument("--tokens", type=lambda s: [int(v) for v in s.split(",")], default=list(TOKENS))
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--commit", default=None)
    ap.add_argument("--no-fbgemm", action="store_true")
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--summary", nargs="+", metavar="FILE")
    ap.add_argument("--summary-json", action="store_true")
    args = ap.parse_args()
    for m in args.models:
        if m not in MODELS:
            ap.error("unknown model %r (known: %s)" % (m, ", ".join(MODELS)))
    if not (args.summary or args.dry_run or args.out):
        ap.error("--out is needed for a timed run")
    return pc.main_modes(args, summarize, print_summary, dry_run, run)


if __name__ == "__main__":
    sys.exit(main())
