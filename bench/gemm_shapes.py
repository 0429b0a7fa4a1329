"""GEMM shape sets of the benchmarks, derived from real models' linear layers.

The "general" set is what llmk promises to be fast on beyond the shapes its
dispatcher table holds: every linear layer of the models below at the tensor
parallel degrees listed, as (N, K) = (output features, input features) of one
GPU's shard, times the token counts GENERAL_M.

  Llama-3.1 8B / 70B / 405B   TP 1, 2, 4, 8
  Qwen2.5 7B / 72B            TP 1, 4
  Mistral-Large-2             TP 8
  DeepSeek-V3                 the dense projections (q_a, q_b, kv_a, kv_b,
                              o) and the shared expert's MLP, unsharded

Per layer: qkv = ((heads + 2 kv_heads) / tp * head_dim, hidden) (at least
one KV head per GPU), o = (hidden, heads / tp * head_dim),
gate_up = (2 intermediate / tp, hidden), down = (hidden, intermediate / tp).

HOLDOUT lists the (N, K) pairs that nothing in llmk was fitted or tuned on:
35 of the 70 pairs, none of them in the dispatcher table
(src/cuda/gemm_table.inc, which holds 15 of the set's pairs), fixed here. They
were drawn by seeded shuffles (random.Random(2026)): first 35 from the pairs
outside the table's original Llama set, then the 5 of those that the table
also holds were replaced by 5 more drawn from the rest. Fitting the
dispatcher's cost model (tools/fit_gemm_model.c) and any `llmk tune gemm`
entry may use FIT pairs only; results on HOLDOUT are reported separately.
"""

MODELS = {
    # name: hidden, intermediate, query heads, kv heads, head dim, TP degrees
    "llama3.1-8b": (4096, 14336, 32, 8, 128, (1, 2, 4, 8)),
    "llama3.1-70b": (8192, 28672, 64, 8, 128, (1, 2, 4, 8)),
    "llama3.1-405b": (16384, 53248, 128, 8, 128, (1, 2, 4, 8)),
    "qwen2.5-7b": (3584, 18944, 28, 4, 128, (1, 4)),
    "qwen2.5-72b": (8192, 29568, 64, 8, 128, (1, 4)),
    "mistral-large-2": (12288, 28672, 96, 8, 128, (8,)),
}

DEEPSEEK_V3 = {  # name: (N, K)
    "q_a": (1536, 7168),
    "q_b": (24576, 1536),
    "kv_a": (576, 7168),
    "kv_b": (32768, 512),
    "o": (7168, 16384),
    "shared_gate_up": (4096, 7168),
    "shared_down": (7168, 2048),
}

GENERAL_M = (1, 4, 16, 32, 64, 128, 256, 1024, 4096, 16384)

HOLDOUT = frozenset([
    (1152, 3584), (1536, 4096), (1792, 12288), (2304, 16384), (3072, 4096), (3584, 896),
    (3584, 3584), (3584, 4096), (3584, 4736), (3584, 18944), (4096, 512), (4096, 1024),
    (4096, 1792), (4096, 3584), (4608, 16384), (5120, 8192), (7168, 4096), (7168, 12288),
    (7168, 16384), (8192, 4096), (8192, 7392), (8192, 29568), (9216, 16384), (14336, 8192),
    (16384, 2048), (16384, 4096), (16384, 8192), (16384, 13312), (16384, 26624), (18432, 16384),
    (26624, 16384), (32768, 512), (37888, 3584), (53248, 16384), (59136, 8192),
])


def general_pairs():
    """{(N, K): [layer names]} of the general set, in (N, K) order."""
    pairs = {}
    for model, (h, inter, q, kv, d, tps) in MODELS.items():
        for tp in tps:
            kvh = max(kv // tp, 1)
            layers = (("qkv", ((q // tp + 2 * kvh) * d, h)), ("o", (h, q * d // tp)),
                      ("gate_up", (2 * inter // tp, h)), ("down", (h, inter // tp)))
            for layer, nk in layers:
                pairs.setdefault(nk, []).append("%s tp%d %s" % (model, tp, layer))
    for layer, nk in DEEPSEEK_V3.items():
        pairs.setdefault(nk, []).append("deepseek-v3 " + layer)
    return dict(sorted(pairs.items()))


def general_shapes(split="all", ms=GENERAL_M):
    """[(M, N, K)] of the general set; split: "all", "fit" or "holdout"."""
    if split not in ("all", "fit", "holdout"):
        raise ValueError("split must be all, fit or holdout")
    out = []
    for nk in general_pairs():
        held = nk in HOLDOUT
        if split == "all" or (split == "holdout") == held:
            out.extend((m, nk[0], nk[1]) for m in ms)
    return out


if __name__ == "__main__":
    # python3 bench/gemm_shapes.py [all|fit|holdout] [M,M,...] [by-pair]: the
    # shapes as `llmk tune gemm --shapes` takes them, ordered by M (smallest
    # first); by-pair: every M of one (N, K) pair, then the next pair, the
    # pairs in a seeded shuffle, so that a time-boxed sweep cut short still
    # holds every M on the pairs it reached
    import random
    import sys
    split = sys.argv[1] if len(sys.argv) > 1 else "all"
    ms = tuple(int(m) for m in sys.argv[2].split(",")) if len(sys.argv) > 2 else GENERAL_M
    pairs = general_pairs()
    assert len(pairs) == 70 and len(HOLDOUT) == 35 and HOLDOUT <= set(pairs), "the general set changed: re-draw HOLDOUT"
    shapes = sorted(general_shapes(split, ms))
    if len(sys.argv) > 3 and sys.argv[3] == "by-pair":
        order = sorted({(n, k) for _, n, k in shapes})
        random.Random(7).shuffle(order)
        rank = {nk: i for i, nk in enumerate(order)}
        shapes.sort(key=lambda s: (rank[(s[1], s[2])], s[0]))
    print(",".join("%dx%dx%d" % s for s in shapes))
