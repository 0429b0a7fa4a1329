"""Every wrapped op against a PyTorch reference, on CPU tensors (llmk's
reference backend) and, where a GPU is visible, CUDA tensors."""
import math

import pytest
import torch

import llmk
import refs


def same_fp8(a, b):
    ua, ub = a.view(torch.uint8), b.view(torch.uint8)
    nan_a, nan_b = (ua & 0x7F) == 0x7F, (ub & 0x7F) == 0x7F
    return bool(torch.equal(nan_a, nan_b) and torch.equal(ua[~nan_a], ub[~nan_b]))


@pytest.mark.parametrize("shape", [(1, 64), (3, 100), (17, 4096), (2, 5, 256)])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32, torch.float16])
def test_quantize_per_row(device, shape, dtype):
    x = (torch.randn(shape) * 3).to(dtype).to(device)
    x.view(-1)[7] = 80.0  # an outlier
    xq, s = llmk.quantize_fp8_per_row(x)
    rq, rs = refs.quantize_rows(x.reshape(-1, shape[-1]))
    assert xq.shape == x.shape and s.shape == x.shape[:-1]
    assert torch.equal(s.reshape(-1), rs)
    assert same_fp8(xq.reshape(-1, shape[-1]), rq)


def test_quantize_per_row_nonfinite_and_ub(device):
    x = torch.randn(8, 128, device=device, dtype=torch.bfloat16)
    x[0, 3], x[1, 5], x[2, :] = float("nan"), float("inf"), 0.0
    xq, s = llmk.quantize_fp8_per_row(x)
    rq, rs = refs.quantize_rows(x)
    assert torch.equal(s, rs) and same_fp8(xq, rq)
    assert s[2].item() == torch.tensor(refs.MIN_SCALE, dtype=torch.float32).item()
    ub = torch.tensor([0.5], device=device)
    xq, s = llmk.quantize_fp8_per_row(x, scale_ub=ub)
    assert torch.all(s <= 0.5 / 448 + 1e-12)


def test_quantize_per_tensor_and_col(device):
    x = torch.randn(33, 160, device=device, dtype=torch.bfloat16)
    xq, s = llmk.quantize_fp8_per_tensor(x)
    rq, rs = refs.quantize(x.float(), refs.amax_finite(x.float()))
    assert s.shape == () and torch.equal(s, rs) and same_fp8(xq, rq)
    bs = torch.tensor([5], dtype=torch.int64, device=device)
    _, s5 = llmk.quantize_fp8_per_tensor(x, bs)
    assert torch.equal(s5, refs.quantize(x[:5].float(), refs.amax_finite(x[:5].float()))[1])
    xq, s = llmk.quantize_fp8_per_col(x)
    rq, rs = refs.quantize(x.float(), refs.amax_finite(x.float(), 0, True))
    assert torch.equal(s, rs.squeeze(0)) and same_fp8(xq, rq)


@pytest.mark.parametrize("bm,bk", [(128, 128), (1, 128), (32, 64)])
def test_quantize_block(device, bm, bk):
    x = torch.randn(150, 300, device=device, dtype=torch.bfloat16)
    xq, s = llmk.quantize_fp8_block(x, bm, bk)
    rq, rs = refs.quantize_blocks(x, bm, bk)
    assert torch.equal(s, rs) and same_fp8(xq, rq)
    gq, gs = llmk.quantize_fp8_group(x.view(3, 50, 300), 128)
    rq, rs = refs.quantize_blocks(x, 1, 128)
    assert gs.shape == (3, 50, 3) and torch.equal(gs.view(150, 3), rs) and same_fp8(gq.view(150, 300), rq)


@pytest.mark.parametrize("m,n,k", [(1, 64, 128), (17, 136, 256), (64, 256, 512)])
def test_gemm_rowwise_tensorwise(device, m, n, k):
    x = torch.randn(m, k, device=device, dtype=torch.bfloat16)
    w = torch.randn(n, k, device=device, dtype=torch.bfloat16) * 0.1
    b = torch.randn(n, device=device, dtype=torch.bfloat16)
    xq, xs = llmk.quantize_fp8_per_row(x)
    wq, ws = llmk.quantize_fp8_per_row(w)
    ref = (xq.double() * xs.double()[:, None]) @ (wq.double() * ws.double()[:, None]).T + b.double()
    for fast in (True, False):
        y = llmk.f8f8bf16_rowwise(xq, wq, xs, ws, b, use_fast_accum=fast)
        assert y.dtype == torch.bfloat16 and y.shape == (m, n)
        assert refs.rel_err(y, ref) < 1e-2
    xq3 = xq.view(1, m, k)
    assert torch.equal(llmk.f8f8bf16_rowwise(xq3, wq, xs.view(1, m), ws, b).view(m, n),
                       llmk.f8f8bf16_rowwise(xq, wq, xs, ws, b))
    tq, ts = llmk.quantize_fp8_per_tensor(x)
    uq, us = llmk.quantize_fp8_per_tensor(w)
    y = llmk.f8f8bf16_tensorwise(tq, uq, ts, us)
    ref = (tq.double() * ts.double()) @ (uq.double() * us.double()).T
    assert refs.rel_err(y, ref) < 1e-2


def test_gemm_tuning(device):
    with pytest.raises(ValueError):
        llmk.set_gemm_tuning("sometimes")
    if device != "cuda":
        return
    llmk.set_gemm_tuning("on")
    try:
        x = torch.randn(16, 4096, device=device, dtype=torch.bfloat16)
        w = torch.randn(2304, 4096, device=device, dtype=torch.bfloat16) * 0.1  # off the measured table
        xq, xs = llmk.quantize_fp8_per_row(x)
        wq, ws = llmk.quantize_fp8_per_row(w)
        ref = (xq.double() * xs.double()[:, None]) @ (wq.double() * ws.double()[:, None]).T
        assert refs.rel_err(llmk.f8f8bf16_rowwise(xq, wq, xs, ws), ref) < 1e-2  # the tuning call
        assert refs.rel_err(llmk.f8f8bf16_rowwise(xq, wq, xs, ws), ref) < 1e-2  # the winner
    finally:
        llmk.set_gemm_tuning("env")


@pytest.mark.parametrize("m", [1, 19, 130])
def test_gemm_blockwise(device, m):
    n, k = 256, 384
    x = torch.randn(m, k, device=device, dtype=torch.bfloat16)
    w = torch.randn(n, k, device=device, dtype=torch.bfloat16)
    wq, ws = llmk.quantize_fp8_block(w, 128, 128)
    wref = refs.dequant_blocks(wq, ws, 128, 128)
    xq, xs = llmk.quantize_fp8_group(x, 128)
    ref = refs.dequant_blocks(xq, xs, 1, 128) @ wref.T
    assert refs.rel_err(llmk.f8f8bf16_groupwise(xq, wq, xs, ws), ref) < 5e-3
    assert refs.rel_err(llmk.f8f8bf16_blockwise(xq, wq, xs, ws, 1, 128, 128), ref) < 5e-3
    bq, bs = llmk.quantize_fp8_block(x, 128, 128)
    ref = refs.dequant_blocks(bq, bs, 128, 128) @ wref.T
    assert refs.rel_err(llmk.f8f8bf16_blockwise(bq, wq, bs, ws), ref) < 5e-3


@pytest.mark.parametrize("sizes", [[5, 0, 12, 3], [40, 1, 0, 0], [2, 3, 9, 1]])
def test_gemm_grouped(device, sizes):
    """Each group's rows against llmk's dense GEMM of the same rows (the grouped GEMM's
    numerics are the dense ones, group by group): stacked row-wise, masked, block-wise, BF16."""
    G, n, k = len(sizes), 64, 256
    T = sum(sizes)
    m = torch.tensor(sizes, dtype=torch.int32, device=device)
    x = torch.randn(T, k, device=device, dtype=torch.bfloat16)
    w = torch.randn(G, n, k, device=device, dtype=torch.bfloat16) * 0.1
    xq, xs = llmk.quantize_fp8_per_row(x)
    wq, ws = llmk.quantize_fp8_per_row(w.view(G * n, k))
    wq, ws = wq.view(G, n, k), ws.view(G, n)
    y = llmk.f8f8bf16_rowwise_grouped_stacked(xq, wq, xs, ws, m)
    gq, gs = llmk.quantize_fp8_group(x, 128)
    bq, bs = zip(*(llmk.quantize_fp8_block(w[g], 128, 128) for g in range(G)))
    yb = llmk.f8f8bf16_groupwise_grouped(gq, torch.stack(bq), gs, torch.stack(bs), m)
    yh = llmk.bf16bf16bf16_grouped_stacked(x, w, m)
    r0 = 0
    for g, s in enumerate(sizes):
        rows = slice(r0, r0 + s)
        r0 += s
        if s == 0:
            continue
        close = torch.equal if device == "cpu" else (lambda a, b: refs.rel_err(a, b.double()) < 1e-2)
        assert close(y[rows], llmk.f8f8bf16_rowwise(xq[rows], wq[g], xs[rows], ws[g]))
        assert close(yb[rows], llmk.f8f8bf16_groupwise(gq[rows], bq[g], gs[rows], bs[g]))
        assert close(yh[rows], llmk.linear_bf16(x[rows], w[g]))
    mmax = max(sizes) + 1
    xd = torch.randn(G, mmax, k, device=device, dtype=torch.bfloat16)
    dq, ds = llmk.quantize_fp8_per_row(xd.view(G * mmax, k))
    yd = llmk.f8f8bf16_rowwise_grouped_dynamic(dq.view(G, mmax, k), wq, ds.view(G, mmax), ws, m)
    for g, s in enumerate(sizes):
        assert torch.all(yd[g, s:] == 0)
        if s:
            ref = llmk.f8f8bf16_rowwise(dq.view(G, mmax, k)[g, :s], wq[g], ds.view(G, mmax)[g, :s], ws[g])
            assert torch.equal(yd[g, :s], ref) if device == "cpu" else refs.rel_err(yd[g, :s], ref.double()) < 1e-2


def test_linear_bf16(device):
    x = torch.randn(2, 7, 256, device=device, dtype=torch.bfloat16)
    w = torch.randn(64, 256, device=device, dtype=torch.bfloat16)
    b = torch.randn(64, device=device, dtype=torch.float32)
    y = llmk.linear_bf16(x, w, b)
    ref = x.double() @ w.double().T + b.double()
    assert y.shape == (2, 7, 64) and refs.rel_err(y, ref) < 4e-3


def rope_ref(x, pos, theta, style):
    t, h, d = x.shape
    f = torch.tensor([theta ** (-(2.0 * i) / d) for i in range(d // 2)], dtype=torch.float64)
    ang = pos.double().cpu()[:, None] * f[None, :]
    c, s = torch.cos(ang).float().to(x.device), torch.sin(ang).float().to(x.device)
    xf = x.float()
    if style == "interleaved":
        a, b = xf[..., 0::2], xf[..., 1::2]
    else:
        a, b = xf[..., : d // 2], xf[..., d // 2:]
    c, s = c[:, None, :], s[:, None, :]
    ya, yb = a * c - b * s, a * s + b * c
    y = torch.empty_like(xf)
    if style == "interleaved":
        y[..., 0::2], y[..., 1::2] = ya, yb
    else:
        y[..., : d // 2], y[..., d // 2:] = ya, yb
    return y


@pytest.mark.parametrize("style", ["interleaved", "neox"])
def test_rope(device, style):
    x = torch.randn(9, 4, 64, device=device)
    pos = torch.tensor([0, 1, 2, 100, 1000, 4095, 70000, 1 << 20, 5], dtype=torch.int32, device=device)
    y = llmk.rope(x, pos, style, 500000.0)
    assert refs.rel_err(y, rope_ref(x, pos, 500000.0, style)) < 1e-6


@pytest.mark.parametrize("fmt", ["bf16", "fp8", "int4"])
@pytest.mark.parametrize("page_size", [0, 16])
def test_kv_write_and_attention(device, fmt, page_size):
    b, hq, hkv, d, t = 3, 8, 2, 64, 40
    cache = llmk.KVCache(b, 64, hkv, d, fmt, 32, page_size, device)
    hist = torch.randn(b, t, hkv, d, device=device, dtype=torch.bfloat16)
    for i in range(t):  # decode-style writes, one token per sequence
        cache.write(hist[:, i].contiguous(), hist[:, i].contiguous() * 0.5,
                    torch.full((b,), i, dtype=torch.int32, device=device))
    kd, vd = cache.dequantize()
    if page_size:  # pages were handed out in order: storage rows are the sequences' positions
        kd, vd = kd.view(b, -1, hkv, d), vd.view(b, -1, hkv, d)
    tol = {"bf16": 1e-6, "fp8": 7e-2, "int4": 0.2}[fmt]
    assert refs.rel_err(kd[:, :t], hist) < tol and refs.rel_err(vd[:, :t], hist * 0.5) < tol
    q = torch.randn(b, hq, d, device=device, dtype=torch.bfloat16)
    lens = torch.tensor([t, 1, 0], dtype=torch.int32, device=device)
    out, lse = cache.attend(q, lens, max_seq_len=t)
    for i in range(b):
        n = int(lens[i])
        if n == 0:
            assert torch.all(out[i] == 0) and torch.all(torch.isneginf(lse[i]))
            continue
        k = kd[i, :n].double().repeat_interleave(hq // hkv, 1)  # [n, hq, d]
        v = vd[i, :n].double().repeat_interleave(hq // hkv, 1)
        s = torch.einsum("hd,nhd->hn", q[i].double(), k) / math.sqrt(d)
        ref = torch.einsum("hn,nhd->hd", torch.softmax(s, -1), v)
        assert refs.rel_err(out[i], ref) < 1e-2
        assert torch.allclose(lse[i].double(), torch.logsumexp(s, -1), atol=1e-3, rtol=1e-5)  # GPU: ex2.approx


def test_rope_qkv_write(device):
    t, hq, hkv, d = 5, 4, 2, 64
    qkv = torch.randn(t, (hq + 2 * hkv) * d, device=device, dtype=torch.bfloat16)
    cache = llmk.KVCache(t, 16, hkv, d, "bf16", device=device)
    pos = torch.tensor([0, 3, 7, 1, 15], dtype=torch.int32, device=device)
    q = cache.rope_qkv_write(qkv, hq, pos)
    x = qkv.view(t, hq + 2 * hkv, d)
    assert refs.rel_err(q, rope_ref(x[:, :hq], pos, 500000.0, "interleaved")) < 4e-3
    kref = rope_ref(x[:, hq:hq + hkv], pos, 500000.0, "interleaved")
    for i in range(t):
        assert refs.rel_err(cache.k[i, pos[i]], kref[i]) < 4e-3
        assert torch.equal(cache.v[i, pos[i]], x[i, hq + hkv:])


@pytest.mark.parametrize("shape", [(1, 64), (5, 4096), (2, 3, 100)])
def test_rmsnorm(device, shape):
    x = torch.randn(shape, device=device, dtype=torch.bfloat16)
    r = torch.randn(shape, device=device, dtype=torch.bfloat16)
    w = torch.randn(shape[-1], device=device, dtype=torch.bfloat16)
    ref = refs.rmsnorm(x, w, 1e-5)
    assert torch.equal(llmk.rmsnorm(x, w, 1e-5), ref)
    y, s = llmk.fused_add_rmsnorm(x, r, w, 1e-5)
    s_ref = (x.float() + r.float()).to(torch.bfloat16)
    assert torch.equal(s, s_ref) and torch.equal(y, refs.rmsnorm(s_ref, w, 1e-5))
    yq, ys = llmk.rmsnorm_quantize_fp8(x, w, 1e-5)
    rq, rs = refs.quantize_rows(ref.reshape(-1, shape[-1]))
    assert torch.equal(ys.reshape(-1), rs) and same_fp8(yq.reshape(-1, shape[-1]), rq)
    yq2, ys2, s2 = llmk.fused_add_rmsnorm_quantize_fp8(x, r, w, 1e-5)
    assert torch.equal(s2, s_ref)


@pytest.mark.parametrize("shape", [(1, 128), (7, 1000), (3, 2, 256)])
def test_silu_mul_quant(device, shape):
    gu = torch.randn(shape[:-1] + (2 * shape[-1],), device=device, dtype=torch.bfloat16) * 3
    g, u = gu[..., : shape[-1]], gu[..., shape[-1]:]  # the halves of one GEMM output
    a = refs.silu_mul(g, u).reshape(-1, shape[-1])
    xq, s = llmk.silu_mul_quant(g, u)
    rq, rs = refs.quantize_rows(a)
    assert torch.equal(s.reshape(-1), rs) and same_fp8(xq.reshape(-1, shape[-1]), rq)
    xq, s = llmk.silu_mul_quant_group(g, u)
    rq, rs = refs.quantize_blocks(a, 1, 128)
    assert torch.equal(s.reshape(rs.shape), rs) and same_fp8(xq.reshape(-1, shape[-1]), rq)


@pytest.mark.parametrize("shape", [(1, 128), (7, 1000), (3, 2, 256)])
def test_silu_mul_bf16(device, shape):
    gu = torch.randn(shape[:-1] + (2 * shape[-1],), device=device, dtype=torch.bfloat16) * 3
    g, u = gu[..., : shape[-1]], gu[..., shape[-1]:]
    a = llmk.silu_mul(g, u)
    assert a.dtype == torch.bfloat16 and torch.equal(a, refs.silu_mul(g, u))
    xq, s = llmk.silu_mul_quant(g, u)  # silu_mul_quant quantizes exactly this value
    rq, rs = refs.quantize_rows(a.reshape(-1, shape[-1]))
    assert torch.equal(s.reshape(-1), rs) and same_fp8(xq.reshape(-1, shape[-1]), rq)


@pytest.mark.parametrize("shape", [(1, 256), (16, 1024), (2, 3, 512)])
def test_rmsnorm_planes_and_gemm(device, shape):
    k = shape[-1]
    x = torch.randn(shape, device=device, dtype=torch.bfloat16)
    r = torch.randn(shape, device=device, dtype=torch.bfloat16)
    w = (1 + 0.1 * torch.randn(k, device=device)).to(torch.bfloat16)
    yq, ys = llmk.rmsnorm_quantize_fp8_planes(x, w, 1e-5)
    assert yq.shape == shape[:-1] + (2, k) and ys.shape == shape[:-1] + (2,)
    q1, s1 = llmk.rmsnorm_quantize_fp8(x, w, 1e-5)
    assert same_fp8(yq[..., 0, :], q1) and torch.equal(ys[..., 0], s1)
    n = refs.rmsnorm(x, w, 1e-5).cpu().float()
    d = n - q1.cpu().float() * s1.cpu().float().unsqueeze(-1)  # fp32 multiply, then subtract
    lq, ls = refs.quantize_rows(d.reshape(-1, k))
    assert torch.equal(ys[..., 1].reshape(-1).cpu(), ls) and same_fp8(yq[..., 1, :].reshape(-1, k).cpu(), lq)
    two = yq.float() * ys.unsqueeze(-1)
    assert refs.rel_err(two[..., 0, :] + two[..., 1, :], n.to(device)) < 4e-3 < refs.rel_err(two[..., 0, :],
                                                                                                n.to(device))
    yq2, ys2, s2 = llmk.fused_add_rmsnorm_quantize_fp8_planes(x, r, w, 1e-5)
    assert torch.equal(s2, (x.float() + r.float()).to(torch.bfloat16))
    assert same_fp8(yq2, llmk.rmsnorm_quantize_fp8_planes(s2, w, 1e-5)[0])
    # the GEMM: bf16(P0 + P1 + bias), P_j the one-plane product of plane j without bias
    wq, ws = llmk.quantize_fp8_per_row(torch.randn(64, k, device=device, dtype=torch.bfloat16))
    bias = torch.randn(64, device=device, dtype=torch.bfloat16)
    y = llmk.f8f8bf16_rowwise_planes(yq, wq, ys, ws, bias)
    p = [llmk.f8f8bf16_rowwise(yq[..., j, :].contiguous(), wq, ys[..., j].contiguous(), ws) for j in range(2)]
    assert y.shape == shape[:-1] + (64,)
    want = ((p[0].float() + p[1].float()) + bias.float()).to(torch.bfloat16)
    if device == "cpu":
        assert torch.equal(y, want)
    else:  # FP8 fast accumulation: kernels of different tiles round differently in low bits
        assert refs.rel_err(y, want) < 4e-3
    with pytest.raises(ValueError):
        llmk.f8f8bf16_rowwise_planes(q1, wq, s1, ws)


@pytest.mark.parametrize("router", ["softmax_topk", "topk_softmax", "sigmoid_topk", "deepseek"])
def test_moe_route(device, router):
    """Against torch's softmax / sigmoid / topk (distinct logits: no ties), weights to 1e-6."""
    T, E, k = 33, 64, 4
    logits = torch.randn(T, E, device=device)
    bias = torch.randn(E, device=device) * 0.1 if router == "deepseek" else None
    ids, w = llmk.moe_route(logits, k, router, renormalize=router != "sigmoid_topk", bias=bias,
                            n_group=8 if router == "deepseek" else 1, topk_group=4 if router == "deepseek" else 1,
                            scaling=2.5 if router == "deepseek" else 1.0)
    lf = logits.double()
    if router == "softmax_topk":
        p = torch.softmax(lf, -1)
        rw, ri = p.topk(k, -1)
        rw = rw / rw.sum(-1, keepdim=True)
    elif router == "topk_softmax":
        rl, ri = lf.topk(k, -1)
        rw = torch.softmax(rl, -1)
    elif router == "sigmoid_topk":
        rl, ri = lf.topk(k, -1)
        rw = torch.sigmoid(rl)
    else:
        s = torch.sigmoid(lf)
        c = s + bias.double()
        gs = c.view(T, 8, 8).topk(2, -1)[0].sum(-1)
        keep = torch.zeros(T, 8, dtype=torch.bool, device=device)
        keep.scatter_(1, gs.topk(4, -1)[1], True)
        c = c.masked_fill(~keep.repeat_interleave(8, 1), float("-inf"))
        ri = c.topk(k, -1)[1]
        rw = s.gather(1, ri)
        rw = rw / rw.sum(-1, keepdim=True) * 2.5
    assert torch.equal(ids.long(), ri)
    assert torch.allclose(w.double(), rw, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("m_max", [0, 5])
def test_moe_route_permute(device, m_max):
    """One call, the same bits as moe_route then moe_permute (DeepSeek's router, a share of 8 of 64)."""
    logits = torch.randn(16, 64, device=device)
    bias = torch.randn(64, device=device) * 0.1
    out = llmk.moe_route_permute(logits, 6, 8, "deepseek", True, bias, 8, 4, 2.5, expert_begin=16, m_max=m_max)
    ids, w = llmk.moe_route(logits, 6, "deepseek", True, bias, 8, 4, 2.5)
    want = (ids, w) + tuple(llmk.moe_permute(ids, 8, 16, m_max))
    for a, b in zip(out, want):
        assert torch.equal(a, b)


@pytest.mark.parametrize("m_max", [0, 3])
def test_moe_permute_gather_combine(device, m_max):
    """The permutation against a stable argsort, the gather against quantize_fp8_per_row of the
    gathered rows (bit for bit), the combine against an fp64 weighted sum."""
    T, k, E, G, begin, H = 40, 2, 16, 12, 2, 256
    ids = torch.randint(-1, E + 1, (T, k), dtype=torch.int32, device=device)
    sizes, offsets, row_of, src_of = llmk.moe_permute(ids, G, begin, m_max)
    flat = ids.view(-1).long() - begin
    local = (flat >= 0) & (flat < G)
    order = torch.argsort(torch.where(local, flat, G), stable=True)[: int(local.sum())]
    counts = torch.bincount(flat[local], minlength=G)
    if m_max == 0:
        assert torch.equal(sizes.long(), counts)
        assert torch.equal(src_of[: len(order)].long(), order)
        assert bool((src_of[len(order):] == -1).all())
    else:
        assert torch.equal(sizes.long(), counts.clamp(max=m_max))
    x = torch.randn(T, H, device=device, dtype=torch.bfloat16)
    xq, xs = llmk.moe_gather_quant(x, src_of, k)
    filled = src_of >= 0
    rq, rs = llmk.quantize_fp8_per_row(x[(src_of[filled] // k).long()])
    assert same_fp8(xq[filled], rq) and torch.equal(xs[filled], rs.view(-1))
    y = torch.randn(src_of.shape[0], H, device=device, dtype=torch.bfloat16)
    w = torch.rand(T, k, device=device)
    out = llmk.moe_combine(y, row_of, w)
    ref = torch.zeros(T, H, dtype=torch.float64, device=device)
    for s in range(k):
        r = row_of[:, s].long()
        ok = r >= 0
        ref[ok] += w[ok, s, None].double() * y[r[ok]].double()
    assert torch.allclose(out.double(), ref, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("asymmetric", [False, True])
def test_int4_quantize_dequantize(device, asymmetric):
    """Codes within half a step of the weight, dequantization (q - z) s, GPTQ import of the same codes."""
    w = (torch.randn(64, 256, device=device) * 0.02).to(torch.bfloat16)
    codes, scales, zeros = llmk.int4_quantize(w, 128, asymmetric)
    q = torch.stack([codes & 15, codes >> 4], -1).view(64, 256).int()
    z = zeros.int().repeat_interleave(128, 1)
    s = scales.float().repeat_interleave(128, 1)
    want = (q - z).float() * s
    assert torch.equal(llmk.int4_dequantize(codes, scales, zeros if asymmetric else None, 128, torch.float32), want)
    assert ((want - w.float()).abs() <= s * 0.5 * (1 + 1e-6)).all()
    # the same codes packed as GPTQ packs them: qweight [K/8, N], qzeros [K/g, N/8]
    qn = q.t().contiguous().view(32, 8, 64).cpu().long()
    qweight = sum(qn[:, j, :] << (4 * j) for j in range(8)).to(torch.int64)
    qweight = torch.where(qweight >= 2 ** 31, qweight - 2 ** 32, qweight).to(torch.int32)
    zn = zeros.t().contiguous().view(2, 8, 8).cpu().long()
    qzeros = sum(zn[:, :, j] << (4 * j) for j in range(8))
    qzeros = torch.where(qzeros >= 2 ** 31, qzeros - 2 ** 32, qzeros).to(torch.int32)
    c2, s2, z2 = llmk.int4_import(qweight, scales.t().contiguous().cpu(), qzeros, "gptq", 128, asymmetric)
    assert torch.equal(c2, codes.cpu()) and torch.equal(s2, scales.cpu())
    assert (z2 is None) == (not asymmetric) and (z2 is None or torch.equal(z2, zeros.cpu()))


@pytest.mark.parametrize("M,asymmetric", [(1, True), (16, False), (48, True)])
def test_gemm_w4a16(device, M, asymmetric):
    """bf16 x INT4: within the GEMM tolerance of llmk's BF16 GEMM on the dequantized weight,
    bias added, leading dims kept; the FBGEMM-named alias is the same op."""
    N, K = 264, 512
    w = (torch.randn(N, K, device=device) * 0.02).to(torch.bfloat16)
    codes, scales, zeros = llmk.int4_quantize(w, 64, asymmetric)
    z = zeros if asymmetric else None
    x = torch.randn(2, M, K, device=device, dtype=torch.bfloat16)
    bias = torch.randn(N, device=device, dtype=torch.bfloat16)
    y = llmk.gemm_w4a16(x, codes, scales, z, bias, 64)
    ref = (x.double() @ llmk.int4_dequantize(codes, scales, z, 64).double().t() + bias.double())
    assert y.shape == (2, M, N) and y.dtype == torch.bfloat16
    err = (y.double() - ref).norm() / ref.norm()
    assert err < 5e-3, err
    assert torch.equal(llmk.bf16i4bf16_rowwise(x, codes, scales, z, bias, 64), y)
