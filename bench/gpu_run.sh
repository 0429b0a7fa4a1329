#!/bin/bash
# One call on the GPU machine: build, run `make test` with the GPU present,
# compute-sanitizer, SASS checks, llmk benchmarks and the PyTorch peers in the
# same run, merged into bench/results/<gpu>/quantize.jsonl. Steps can be
# chosen: bench/gpu_run.sh [build] [test] [sanitize] [sass] [bench] [ab] [peer] [lab]
# [gemmtest] [gemm_ab] [tune] [gemm] [gemm_peer] [gemm_block] [gemm_bf16] [power] [profile] [attention] [kvcache]
# [pytest] [layer] [occupancy] [gemm_sweep] [refit] [general] [decode_prof] [decode_phases] [attention_ab] [attention_tp]
# [grouped] [grouped_sweep] [grouped_ab] [moe] [int4]
# (default: the quantize steps, no lab). Everything lands under $OUT, at most 8 files (the block
# and bf16 steps keep their intermediate files in /tmp); run.log is the step-by-step summary.
set -u
OUT=${OUT:-/tmp/llmk-out}
mkdir -p "$OUT"
steps=${*:-build test sanitize sass bench ab peer}
has() { case " $steps " in *" $1 "*) return 0 ;; esac; return 1; }
log() { echo "== $*" | tee -a "$OUT/run.log"; }
# FBGEMM's gen_ai wheel (carried in .whl) installed once per run outside the
# tree, which the machine's copy of the working tree does not keep
FBSITE=/tmp/llmk-fbgemm-site
fbgemm_site() {
  [ -d "$FBSITE/fbgemm_gpu" ] || python3 -m pip install -q --no-index --no-deps --target "$FBSITE" .whl/*.whl > /dev/null 2>&1 ||
    echo "FBGEMM's wheel did not install (is .whl carried?)" | tee -a "$OUT/run.log"
}

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv >> "$OUT/run.log" 2>&1
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
case "$gpu" in *H100*) dir=h100 ;; *H200*) dir=h200 ;; *) dir=other ;; esac
# The device copy of the tree may have no .git: pass LLMK_COMMIT=$(git rev-parse --short=12 HEAD).
commit=${LLMK_COMMIT:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}

if has build; then
  log "build"
  make -j16 all lab build/tests/fp8_exhaustive > /tmp/llmk-build.log 2>&1 || { tail -30 /tmp/llmk-build.log; exit 1; }
  ./build/llmk check | tee -a "$OUT/run.log"
fi
if has test; then
  log "make test"
  set -o pipefail
  make test 2>&1 | tee "$OUT/test.log" | grep -E "^(== |tests:|FAIL|failing|skipped|seed)|passed," | tee -a "$OUT/run.log"
  set +o pipefail
fi
if has occupancy; then
  log "cluster occupancy (resident clusters of 1..16 SM-filling CTAs)"
  make -j16 lab > /dev/null 2>&1
  ./build/lab/cluster_occupancy > "$OUT/cluster_occupancy.jsonl"
  sed -n "s/.*hbm_gbps.: \([0-9.]*\), .cluster.: \([0-9]*\), .max_active_clusters.: \([0-9]*\).*/\2:\3 (hbm \1)/p" "$OUT/cluster_occupancy.jsonl" | tr "\n" " " | tee -a "$OUT/run.log"
  echo | tee -a "$OUT/run.log"
fi
if has gemm_sweep; then
  # Every own configuration and K split (and cuBLASLt's own choice) on the fit
  # half of the general set (bench/gemm_shapes.py), pair by pair (every M of
  # a pair, the pairs shuffled), so a sweep cut short by its time box still
  # covers every M: the data tools/fit_gemm_model.c fits the cost model on.
  # SWEEP_MS: the token counts; SWEEP_S: the time box; SWEEP_SCALING: row, block or bf16.
  log "gemm sweep ${SWEEP_SCALING:-row}, M in ${SWEEP_MS:-1,16,64,128,1024,4096}"
  shapes=$(python3 bench/gemm_shapes.py fit "${SWEEP_MS:-1,16,64,128,1024,4096}" by-pair)
  timeout "${SWEEP_S:-240}" ./build/llmk tune gemm --scaling "${SWEEP_SCALING:-row}" --lt-algos 1 --reps 5 \
    --shapes "$shapes" --dump "$OUT/gemm_sweep_${SWEEP_SCALING:-row}.jsonl" > /dev/null 2> "$OUT/gemm_sweep.log"
  echo "rows: $(wc -l < "$OUT/gemm_sweep_${SWEEP_SCALING:-row}.jsonl"), shapes: $(cut -d, -f2-4 "$OUT/gemm_sweep_${SWEEP_SCALING:-row}.jsonl" | sort -u | wc -l)" | tee -a "$OUT/run.log"
fi
if has refit; then
  # The cost model fitted to this run's sweeps, and the measured-neighbours
  # table (cross-validated report in fit_report.txt), compiled in for the
  # steps after this one; the new src/cuda/gemm_model.inc and
  # gemm_neighbours.inc come back in $OUT to be committed.
  log "refit the GEMM cost model"
  ./build/fit_gemm_model --occupancy "$OUT/cluster_occupancy.jsonl" --out src/cuda/gemm_model.inc \
    --neighbours-out src/cuda/gemm_neighbours.inc "$OUT"/gemm_sweep_*.jsonl 2> "$OUT/fit_report.txt" &&
    cp src/cuda/gemm_model.inc src/cuda/gemm_neighbours.inc "$OUT/"
  tee -a "$OUT/run.log" < "$OUT/fit_report.txt"
  make -j16 all > /tmp/llmk-refit-build.log 2>&1 || tail -20 /tmp/llmk-refit-build.log
fi
if has general; then
  # llmk against FBGEMM (its gen_ai wheel carried in .whl) and torch on the
  # general shape set, under graphs: GENERAL_OPS (row), GENERAL_S (time box).
  log "general set: ${GENERAL_OPS:-row} against FBGEMM and torch"
  fbgemm_site
  tag=$(echo "${GENERAL_OPS:-row}" | tr ',' '_')
  PYTHONPATH=$FBSITE:python PYTHONUNBUFFERED=1 LLMK_COMMIT="$commit" python3 bench/peer_gemm_general.py \
    --ops "${GENERAL_OPS:-row}" ${GENERAL_ARGS:-} --out "$OUT/general_$tag.jsonl" --time-limit "${GENERAL_S:-400}" \
    > /tmp/general_$tag.txt 2> "$OUT/general_$tag.err"
  python3 bench/peer_gemm_general.py --summary "$OUT/general_$tag.jsonl" | tee -a "$OUT/run.log"
  tail -5 "$OUT/general_$tag.err" | tee -a "$OUT/run.log"
fi
if has decode_prof; then
  log "decode GEMMs under ncu: own swapped tiles by K split, FBGEMM's rowwise kernel"
  fbgemm_site
  OUT="$OUT" FBSITE="$FBSITE" bash bench/prof/decode_ncu.sh 2>&1 | tee "$OUT/decode_prof.txt" | tail -40 | tee -a "$OUT/run.log"
fi
if has decode_phases; then
  # Where a decode GEMM's time goes, from timestamps inside every CTA of a
  # graph chain (bench/lab/gemm_decode_phases.cu): launch floor, gap between
  # calls, wait, fill, main loop, K-split reduction, epilogue.
  log "decode GEMM phases (decode_phases.jsonl)"
  make -j16 lab > /dev/null 2>&1
  timeout "${PHASES_S:-120}" ./build/lab/gemm_decode_phases > "$OUT/decode_phases.jsonl" 2> "$OUT/decode_phases.err"
  python3 - "$OUT/decode_phases.jsonl" <<'PY' | tee -a "$OUT/run.log"
import json, sys
keys = ["us", "null_us", "hbm_floor_us", "span_us", "gap_us", "skew_us", "wait_us", "fill_us", "main_us", "reduce_us",
        "epi_us", "exit_us"]
print("%-22s %-16s " % ("shape", "config") + " ".join("%8s" % (k[:-3] or k) for k in keys))
for l in open(sys.argv[1]):
    r = json.loads(l)
    print("%-22s %-16s " % ("%dx%dx%d" % (r["m"], r["n"], r["k"]), "%s k%d%s" % (r["config"], r["splits"], "" if r["ok"] else " BAD"))
          + " ".join("%8.2f" % r[k] for k in keys))
PY
  tail -3 "$OUT/decode_phases.err" | tee -a "$OUT/run.log"
fi
if has grouped; then
  # The grouped (MoE) GEMM: its test, `llmk bench gemm --grouped`, FBGEMM's
  # grouped kernels and torch's in the same run (bench/peer_gemm_grouped.py;
  # GROUPED_ARGS, GROUPED_S time box), then compute-sanitizer on the test
  # (GROUPED_MEMCHECK_S), each step time-boxed.
  log "grouped GEMM: test, bench, peers, memcheck"
  timeout "${GROUPED_TEST_S:-120}" ./build/tests/test_gemm_grouped > "$OUT/grouped_test.log" 2>&1
  echo "test_gemm_grouped exit $?: $(tail -1 "$OUT/grouped_test.log")" | tee -a "$OUT/run.log"
  grep FAIL "$OUT/grouped_test.log" | head -10 | tee -a "$OUT/run.log"
  timeout "${GROUPED_BENCH_S:-90}" ./build/llmk bench gemm --grouped ${GROUPED_BENCH_ARGS:-} --json > "$OUT/grouped_llmk.jsonl" 2> "$OUT/grouped_llmk.err" ||
    echo "bench gemm --grouped failed, timed out or a check failed" | tee -a "$OUT/run.log"
  fbgemm_site
  PYTHONPATH=$FBSITE:python PYTHONUNBUFFERED=1 LLMK_COMMIT="$commit" timeout "${GROUPED_S:-400}" python3 bench/peer_gemm_grouped.py \
    ${GROUPED_ARGS:-} --out "$OUT/gemm_grouped.jsonl" > /tmp/grouped_peer.txt 2> "$OUT/grouped_peer.err"
  python3 bench/peer_gemm_grouped.py --summary "$OUT/gemm_grouped.jsonl" | tee -a "$OUT/run.log"
  tail -5 "$OUT/grouped_peer.err" | tee -a "$OUT/run.log"
  timeout "${GROUPED_MEMCHECK_S:-150}" compute-sanitizer --tool memcheck ./build/tests/test_gemm_grouped > "$OUT/grouped_memcheck.log" 2>&1
  echo "memcheck exit $?: $(tail -2 "$OUT/grouped_memcheck.log" | tr '\n' ' ')" | tee -a "$OUT/run.log"
fi
if has moe; then
  # The MoE ops: their GPU test (bitwise against the CPU reference, every
  # routing kernel, graph replay, timings) and FBGEMM's index_shuffling,
  # gather_scale_quant_dense_tokens and scatter_add_along_first_dim beside
  # them (bench/peer_moe.py).
  log "MoE ops: test, peers"
  timeout "${MOE_TEST_S:-120}" ./build/tests/test_moe_gpu > "$OUT/moe_test.log" 2>&1
  echo "test_moe_gpu exit $?: $(tail -1 "$OUT/moe_test.log")" | tee -a "$OUT/run.log"
  grep -E "FAIL|timing" "$OUT/moe_test.log" | head -20 | tee -a "$OUT/run.log"
  fbgemm_site
  PYTHONPATH=$FBSITE:python PYTHONUNBUFFERED=1 LLMK_COMMIT="$commit" timeout "${MOE_PEER_S:-240}" python3 bench/peer_moe.py \
    ${MOE_ARGS:-} --out "$OUT/moe_ops.jsonl" > /tmp/moe_peer.txt 2> /tmp/moe_peer.err
  python3 bench/peer_moe.py --summary "$OUT/moe_ops.jsonl" | tee -a "$OUT/run.log"
  tail -5 /tmp/moe_peer.err | tee -a "$OUT/run.log"
  # the MoE block, FP8 (llmk) against BF16 (PyTorch), Scout- and DeepSeek-V3-shaped
  LLMK_LIBRARY=$PWD/build/libllmk.so PYTHONPATH=python LLMK_COMMIT="$commit" timeout "${MOE_DEMO_S:-240}" \
    python3 -m llmk.demo --moe --json "$OUT/moe_block.jsonl" 2>&1 | tail -12 | tee -a "$OUT/run.log"
fi
if has int4; then
  # INT4 weights: the GPU tests (quantizer, dequantizer, llmk_gemm_w4a16 on
  # every path), the W4A16 decode lab, and llmk_gemm_w4a16 against FBGEMM's
  # bf16i4bf16 GEMMs and llmk's FP8 / BF16 GEMMs (bench/peer_gemm_int4.py).
  log "INT4: tests, lab, peers"
  for t in test_int4_gpu test_gemm_w4a16; do
    timeout "${INT4_TEST_S:-90}" ./build/tests/$t > "/tmp/$t.log" 2>&1
    echo "$t exit $?: $(tail -1 "/tmp/$t.log")" | tee -a "$OUT/run.log"
    grep FAIL "/tmp/$t.log" | head -10 | tee -a "$OUT/run.log"
  done
  make -j16 build/lab/w4a16_decode_lab > /dev/null 2>&1
  timeout "${INT4_LAB_S:-100}" ./build/lab/w4a16_decode_lab 16 > "$OUT/w4a16_lab.jsonl" 2> /tmp/w4a16_lab.err
  tail -3 /tmp/w4a16_lab.err | tee -a "$OUT/run.log"
  fbgemm_site
  PYTHONPATH=$FBSITE:python PYTHONUNBUFFERED=1 LLMK_COMMIT="$commit" LLMK_LIBRARY=$PWD/build/libllmk.so \
    timeout "${INT4_PEER_S:-300}" python3 bench/peer_gemm_int4.py ${INT4_ARGS:-} --out "$OUT/gemm_int4.jsonl" \
    > /tmp/int4_peer.txt 2> /tmp/int4_peer.err
  python3 bench/peer_gemm_int4.py --summary "$OUT/gemm_int4.jsonl" | tee -a "$OUT/run.log"
  tail -5 /tmp/int4_peer.err | tee -a "$OUT/run.log"
fi
if has grouped_sweep; then
  # Every grouped configuration forced in turn (LLMK_GEMM_OWN_CFG, and
  # LLMK_GEMM_SPLITS for swapped tiles) on `llmk bench gemm --grouped`:
  # SWEEP_CFGS (names), SWEEP_SPLITS, SWEEP_BATCHES, SWEEP_TAG (file suffix), SWEEP_ARGS (more bench
  # arguments), SWEEP_S the time box of each bench call. The table prints
  # each (model, projection, batch) row's time per configuration.
  log "grouped sweep: ${SWEEP_CFGS:-grouped_persist_128x128_s6 grouped_persist_128x256_s4 grouped_ping_128x128_s6}"
  : > "$OUT/grouped_sweep${SWEEP_TAG:-}.jsonl"
  for c in ${SWEEP_CFGS:-grouped_persist_128x128_s6 grouped_persist_128x256_s4 grouped_ping_128x128_s6}; do
    for sp in ${SWEEP_SPLITS:-0}; do
      for b in ${SWEEP_BATCHES:-4096 16384}; do
        env LLMK_GEMM_OWN_CFG="$c" LLMK_GEMM_SPLITS="$sp" timeout "${SWEEP_S:-60}" ./build/llmk bench gemm --grouped \
          --batch "$b" ${SWEEP_ARGS:-} --json 2>> "$OUT/grouped_sweep${SWEEP_TAG:-}.err" | sed "s/^{/{\"forced\": \"$c:$sp\", /" >> "$OUT/grouped_sweep${SWEEP_TAG:-}.jsonl"
      done
    done
  done
  python3 - "$OUT/grouped_sweep${SWEEP_TAG:-}.jsonl" <<'PY' | tee -a "$OUT/run.log"
import json, sys
t, cfgs = {}, []
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r["forced"] not in cfgs: cfgs.append(r["forced"])
    t.setdefault((r["model"], r["which"], r["scaling"] if r["dtype"] != "bf16" else "bf16", r["batch_tokens"]), {})[r["forced"]] = r["llmk_us"]
print("%-16s %-8s %-5s %6s " % ("model", "which", "kind", "B") + " ".join("%14s" % c.replace("grouped_", "")[:14] for c in cfgs))
for k, v in sorted(t.items()):
    best = min(v.values())
    print("%-16s %-8s %-5s %6d " % k + " ".join("%13.1f%s" % (v[c], "*" if v[c] == best else " ") if c in v else "%14s" % "-" for c in cfgs))
PY
fi
if has grouped_ab; then
  # Two builds, or two environments, of `llmk bench gemm --grouped` in one
  # run, alternating per batch: ./build/llmk against AB_OTHER (another
  # build's llmk binary, e.g. unpacked from a carried archive; default
  # ./build/llmk) run with AB_ENV (VAR=value words, e.g. LLMK_GEMM_BAND=1);
  # AB_BATCHES, AB_ARGS (more bench arguments). Prints each row's two times
  # and their ratio.
  log "grouped A/B: ./build/llmk against ${AB_OTHER:-./build/llmk} ${AB_ENV:-}"
  : > /tmp/grouped_ab.jsonl
  for b in ${AB_BATCHES:-512 4096 16384}; do
    for v in this other; do
      bin=./build/llmk envs=
      [ "$v" = other ] && bin=${AB_OTHER:-./build/llmk} envs=${AB_ENV:-}
      env $envs timeout 60 "$bin" bench gemm --grouped --batch "$b" ${AB_ARGS:-} --json 2>/dev/null |
        sed "s/^{/{\"build\": \"$v\", /" >> /tmp/grouped_ab.jsonl
    done
  done
  cp /tmp/grouped_ab.jsonl "$OUT/grouped_ab.jsonl"
  python3 - /tmp/grouped_ab.jsonl <<'PY' | tee -a "$OUT/run.log"
import json, sys
t = {}
for l in open(sys.argv[1]):
    r = json.loads(l)
    kind = r["scaling"] if r["dtype"] != "bf16" else "bf16"
    t.setdefault((r["model"], r["which"], kind, r["batch_tokens"]), {})[r["build"]] = r["llmk_us"]
for k, v in sorted(t.items()):
    if "this" in v and "other" in v:
        print("%-16s %-8s %-5s %6d  this %9.1f us  other %9.1f us  other/this %.3f" % (k + (v["this"], v["other"], v["other"] / v["this"])))
PY
fi
if has attention_ab; then
  # One environment knob of decode attention A/B at TP head counts, in one
  # process per value: AB_VAR (default LLMK_ATTN_MERGE_PARTS), AB_VALUES.
  log "decode attention A/B: ${AB_VAR:=LLMK_ATTN_MERGE_PARTS} in ${AB_VALUES:=1 4}"
  : > /tmp/attention_ab.jsonl
  for hh in ${TP_HEADS:-8:1 16:2}; do
    for v in $AB_VALUES; do
      env "$AB_VAR=$v" timeout 30 ./build/llmk bench attention --shapes "${AB_SHAPES:-1:1024,1:8192,1:32768,1:131072,8:8192}" \
        --hq "${hh%%:*}" --hkv "${hh##*:}" --format bf16 --json | sed "s/^{/{\"ab\": \"$v\", /" >> /tmp/attention_ab.jsonl
    done
  done
  python3 - /tmp/attention_ab.jsonl <<'PY' | tee -a "$OUT/run.log"
import json, sys
t = {}
for l in open(sys.argv[1]):
    r = json.loads(l)
    s = r["shape"]
    t.setdefault((s["hq"], s["hkv"], s["b"], s["t"]), {})[r["ab"]] = r.get("llmk_us_graph") or r["llmk_us"]
for k, v in sorted(t.items()):
    print("hq %2d hkv %d B %-3d T %-6d " % k + "  ".join("%s: %7.2f us" % (a, u) for a, u in sorted(v.items())))
PY
fi
if has attention_tp; then
  # Decode attention at tensor-parallel head counts (Hkv 1, 2, 4; 4 to 16
  # query heads per KV head): llmk's BF16 and FP8 caches against every SDPA
  # backend on the same shapes; per row the best backend and the ratio.
  # TP_HEADS: "hq:hkv ..."; TP_SHAPES: B:T list; TP_S: time box per head count;
  # TP_SPLITS: fixed KV split counts timed beside llmk's own choice.
  log "decode attention at TP head counts against SDPA (attention_tp.jsonl)"
  : > "$OUT/attention_tp.jsonl"
  for hh in ${TP_HEADS:-8:1 16:1 16:2 32:2 16:4 64:4}; do
    hq=${hh%%:*} hkv=${hh##*:}
    shapes=${TP_SHAPES:-1:1024,1:8192,1:32768,1:131072,8:8192,8:32768,32:8192,128:2048,256:1024,256:4096}
    for fmt in bf16 fp8; do
      for sp in 0 ${TP_SPLITS:-}; do
        LLMK_COMMIT=$commit timeout "${TP_S:-90}" ./build/llmk bench attention --shapes "$shapes" --hq $hq --hkv $hkv \
          --format $fmt --splits $sp --json >> "$OUT/attention_tp.jsonl" 2>> /tmp/attention_tp.err
      done
    done
    PYTHONUNBUFFERED=1 timeout "${TP_S:-90}" python3 bench/peer_attention.py --shapes "$shapes" --hq $hq --hkv $hkv \
      --backends default,flash,efficient,cudnn --out /tmp/attention_tp_peer.jsonl > /dev/null 2>> /tmp/attention_tp.err
    cat /tmp/attention_tp_peer.jsonl >> "$OUT/attention_tp.jsonl"
  done
  python3 - "$OUT/attention_tp.jsonl" <<'PY' | tee -a "$OUT/run.log"
import json, sys
llmk, peer, fixed = {}, {}, {}
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r.get("op") != "attention_decode":
        continue
    s = r["shape"]
    key = (s["hq"], s["hkv"], s["b"], s["t"])
    if "llmk_us" in r:
        us = r.get("llmk_us_graph") or r["llmk_us"]
        if r.get("splits", 0) == 0:
            llmk[key + (r["format"],)] = us
        else:
            fixed.setdefault(key + (r["format"],), []).append((us, r["splits"]))
    elif r.get("peer_us_graph") or r.get("peer_us"):
        us = r.get("peer_us_graph") or r["peer_us"]
        if key not in peer or us < peer[key][0]:
            peer[key] = (us, r.get("peer"))
worst = []
for k, us in sorted(llmk.items()):
    p = peer.get(k[:4])
    if p:
        worst.append((p[0] / us, k, us, p))
        print("hq %2d hkv %d B %-3d T %-6d %-4s llmk %8.2f us  best SDPA %8.2f (%s)  x %.2f" % (k + (us, p[0], p[1], p[0] / us)))
if worst:
    print("below 1.0x: %d of %d rows; worst %.2f at %s" % (sum(1 for w in worst if w[0] < 1.0), len(worst), min(worst)[0], min(worst)[1]))
for k, v in sorted(fixed.items()):  # TP_SPLITS: fixed KV splits against llmk's own choice
    if k in llmk:
        us, sp = min(v)
        print("hq %2d hkv %d B %-3d T %-6d %-4s own split %8.2f us, best fixed %8.2f (%d splits)" % (k + (llmk[k], us, sp)))
PY
fi
if has gemmtest; then
  log "test_gemm_gpu alone"
  ./build/tests/test_gemm_gpu > "$OUT/gemm_test.log" 2>&1
  grep -E "GPU GEMM runs|passed," "$OUT/gemm_test.log" | tee -a "$OUT/run.log"
  grep -E "FAIL" "$OUT/gemm_test.log" | head -20 | tee -a "$OUT/run.log"
fi
if has sanitize; then
  log "compute-sanitizer memcheck (quick GPU test)"
  LLMK_TEST_QUICK=1 compute-sanitizer --tool memcheck --leak-check full ./build/tests/test_quantize_gpu \
    > "$OUT/sanitizer.log" 2>&1
  tail -3 "$OUT/sanitizer.log" | tee -a "$OUT/run.log"
  LLMK_TEST_QUICK=1 compute-sanitizer --tool racecheck ./build/tests/test_quantize_gpu 2>&1 | tail -2 | tee -a "$OUT/run.log"
  log "compute-sanitizer memcheck (quick GEMM test: every own configuration, graph replay)"
  LLMK_TEST_QUICK=1 compute-sanitizer --tool memcheck --leak-check full ./build/tests/test_gemm_gpu > "$OUT/sanitizer_gemm.log" 2>&1
  grep -E "GPU GEMM runs|passed," "$OUT/sanitizer_gemm.log" | tee -a "$OUT/run.log"
  tail -2 "$OUT/sanitizer_gemm.log" | tee -a "$OUT/run.log"
  log "compute-sanitizer memcheck (decode attention, KV cache and RoPE tests)"
  for t in test_attention_gpu test_kvcache_gpu; do
    LLMK_TEST_QUICK=1 compute-sanitizer --tool memcheck ./build/tests/$t > "/tmp/sanitizer_$t.log" 2>&1
    grep -E "passed,|ERROR SUMMARY" "/tmp/sanitizer_$t.log" | sed "s/^/$t: /" | tee -a "$OUT/run.log"
  done
fi
if has sass; then
  log "SASS: 16-byte loads, local memory, per kernel"
  cuobjdump --dump-sass build/libllmk.so > /tmp/sass.txt 2>&1
  awk '/Function :/ {f=$3} /LDG.E.128|LDG.E.ENL2.128|LDG.E.CONSTANT.128/ {l[f]++} /LDL|STL/ {loc[f]++} /STG.E.64|STG.E.128/ {s[f]++}
       END {for (k in l) printf "%-90s ldg128=%d stg64/128=%d local=%d\n", k, l[k], s[k], loc[k]+0}' /tmp/sass.txt \
    | sort > "$OUT/sass.txt"
  echo "kernels with local-memory ops: $(grep -c 'local=[1-9]' "$OUT/sass.txt")" | tee -a "$OUT/run.log"
fi
if has bench; then
  log "llmk bench quantize"
  : > "$OUT/llmk.jsonl"
  b() { ./build/llmk bench quantize --json "$@" >> "$OUT/llmk.jsonl" || echo "bench failed: $*"; }
  for m in 1 16 128 1024 4096 16384; do b --scaling row --m $m --k 8192; done
  b --scaling row --m 16 --k 28672
  b --scaling row --m 16384 --k 8192 --fp8 e5m2
  for m in 1 16 1024 4096 16384; do b --scaling block --block 1x128 --m $m --k 8192; done
  b --scaling block --block 128x128 --m 16384 --k 8192
  b --scaling block --block 128x1 --m 16384 --k 8192
  for m in 1 16 32 4096 16384; do b --scaling tensor --m $m --k 8192; done
  b --scaling col --m 16384 --k 8192
  b --scaling row --m 16384 --k 8192 --dtype f32
  python3 - "$OUT/llmk.jsonl" <<'PY' | tee -a "$OUT/run.log"
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    print("%-28s %6dx%-6d %s us=%9.2f graph=%8s GB/s=%7.0f copy=%5.1f%%" % (r["op"], r["shape"]["m"], r["shape"]["k"],
          r["fp8"], r["llmk_us"], ("%.2f" % r["llmk_us_graph"]) if "llmk_us_graph" in r else "-", r["gbps"], 100 * r["frac_copy"]))
PY
fi
if has ab; then
  log "A/B of kernel choices (env-forced), same run"
  ab() { echo -n "$1: "; shift; env "$@" | sed 's/  *(/ (/'; }
  ab "128x128 band kernel " ./build/llmk bench quantize --scaling block --block 128x128 --m 16384 --k 8192
  ab "128x128 tile kernel " LLMK_QUANT_BANDS=0 ./build/llmk bench quantize --scaling block --block 128x128 --m 16384 --k 8192
  ab "128x1 band kernel   " ./build/llmk bench quantize --scaling block --block 128x1 --m 16384 --k 8192
  ab "128x1 tile kernel   " LLMK_QUANT_BANDS=0 ./build/llmk bench quantize --scaling block --block 128x1 --m 16384 --k 8192 --reps 5
  for m in 1 4 16 32; do
    ab "tensor default      " ./build/llmk bench quantize --scaling tensor --m $m --k 8192
    ab "tensor no one-CTA   " LLMK_TENSOR_ONE_CTA_MAX=0 ./build/llmk bench quantize --scaling tensor --m $m --k 8192
    ab "tensor no cluster   " LLMK_TENSOR_CLUSTER=0 ./build/llmk bench quantize --scaling tensor --m $m --k 8192
  done
fi 2>&1 | tee -a "$OUT/run.log"
if has lab; then
  log "kernel labs"
  for l in build/lab/*; do "$l" | tee -a "$OUT/run.log"; done
fi
if has peer; then
  log "PyTorch peers"
  PYTHONUNBUFFERED=1 timeout 420 python3 bench/peer_quantize.py --no-max-autotune \
    --shapes 16384x8192,16x8192,1x8192,4096x8192,1024x8192 \
    --out "$OUT/peer.jsonl" > "$OUT/peer.log" 2>&1
  tail -25 "$OUT/peer.log"
  mkdir -p "bench/results/$dir"
  python3 bench/merge_results.py --llmk "$OUT/llmk.jsonl" --peer "$OUT/peer.jsonl" --commit "$commit" \
    --out "$OUT/quantize.jsonl" && log "merged rows: $(wc -l < "$OUT/quantize.jsonl") -> copy to bench/results/$dir/"
fi
if has gemm_ab; then
  # BASE: an llmk binary built from an earlier commit (carried in .base/): the
  # same three GEMMs, alternating the two binaries, twice each.
  base=${BASE:-.base/llmk_base}
  log "bench gemm before/after: $base vs ./build/llmk (row scaling, graph us for M <= 128)"
  for shape in "16 8192 3584" "128 13312 16384" "4096 7168 8192"; do
    set -- $shape
    for rep in 1 2; do
      for bin in "$base" ./build/llmk; do
        echo -n "$bin M=$1 N=$2 K=$3 rep $rep: "
        "$bin" bench gemm --m $1 --n $2 --k $3 --peak 1000 --reps 50 --check-rows 1 2>&1 | tail -1
      done
    done
  done 2>&1 | tee -a "$OUT/run.log"
fi
if has tune; then
  log "llmk tune gemm -> gemm_table.inc (copy to src/cuda/ and rebuild)"
  # TUNE_ARGS: e.g. "--scaling all --verbose" (per-configuration times go to tune.log; "all" adds
  # the block-scaled and BF16 entries to row- and tensor-wise)
  ./build/llmk tune gemm ${TUNE_ARGS:-} > "$OUT/gemm_table.inc" 2> "$OUT/tune.log" && awk -F', ' '/^\{/ {n++; o+=$5} END {print "own fastest on " o " of " n " shapes"}' "$OUT/gemm_table.inc" | tee -a "$OUT/run.log"
fi
if has gemm; then
  log "llmk bench gemm --llama (auto backend; rows checked against the CPU reference)"
  : > "$OUT/gemm_llmk.jsonl"
  for sc in ${GEMM_SCALINGS:-row tensor}; do
    ./build/llmk bench gemm --llama --scaling $sc --json >> "$OUT/gemm_llmk.jsonl" || echo "bench gemm ($sc) failed or a check failed" | tee -a "$OUT/run.log"
  done
  grep -c '"checked": true' "$OUT/gemm_llmk.jsonl" | sed 's/^/rows checked ok: /' | tee -a "$OUT/run.log"
fi
if has gemm_peer; then
  log "PyTorch GEMM peers"
  PYTHONUNBUFFERED=1 timeout 400 python3 bench/peer_gemm.py --out "$OUT/gemm_peer.jsonl" > "$OUT/gemm_peer.log" 2>&1
  tail -3 "$OUT/gemm_peer.log"
  python3 bench/merge_results.py --llmk "$OUT/gemm_llmk.jsonl" --peer "$OUT/gemm_peer.jsonl" --commit "$commit" \
    --out "$OUT/gemm_fp8.jsonl" && log "merged rows: $(wc -l < "$OUT/gemm_fp8.jsonl") -> bench/results/$dir/gemm_fp8.jsonl"
fi
work=/tmp/llmk-work
mkdir -p "$work"
# One Llama-set run of `llmk bench gemm ARGS` (auto backend, rows checked),
# the PyTorch peer op PEER_OP in the same run, merged into $OUT/NAME.jsonl.
bench_peer_merge() {
  local name=$1 peer_op=$2; shift 2
  ./build/llmk bench gemm --llama "$@" --json > "$work/${name}_llmk.jsonl" || echo "bench gemm ($*) failed or a check failed" | tee -a "$OUT/run.log"
  grep -c '"checked": true' "$work/${name}_llmk.jsonl" | sed 's/^/rows checked ok: /' | tee -a "$OUT/run.log"
  PYTHONUNBUFFERED=1 timeout 300 python3 bench/peer_gemm.py --ops "$peer_op" --out "$work/${name}_peer.jsonl" > "$work/${name}_peer.log" 2>&1
  tail -2 "$work/${name}_peer.log" | tee -a "$OUT/run.log"
  python3 bench/merge_results.py --llmk "$work/${name}_llmk.jsonl" --peer "$work/${name}_peer.jsonl" --commit "$commit" \
    --out "$OUT/$name.jsonl" && log "merged rows: $(wc -l < "$OUT/$name.jsonl") -> bench/results/$dir/$name.jsonl"
}
if has gemm_block; then
  log "block-scaled GEMM: llmk bench gemm --scaling block (auto), torch._scaled_mm block-wise, merged"
  bench_peer_merge gemm_block gemm_fp8_blockwise --scaling block
fi
if has gemm_bf16; then
  log "BF16 GEMM: llmk bench gemm --dtype bf16 (auto, and own forced: bf16_own.txt), torch.mm, merged"
  ./build/llmk bench gemm --llama --dtype bf16 --backend own > "$OUT/bf16_own.txt" 2>&1 || echo "bench gemm (bf16, own) failed or a check failed" | tee -a "$OUT/run.log"
  bench_peer_merge gemm_bf16 gemm_bf16 --dtype bf16
fi
# The power and profile steps: own configuration POWER_CFG (default 33,
# 192x128 promoting) on one prefill shape, row-wise fp32 promotion vs block.
OWN_CFG_SHAPE="--m 4096 --n 16384 --k 16384"
own_cfg_bench() { LLMK_GEMM_OWN_CFG=${POWER_CFG:-33} ./build/llmk bench gemm $OWN_CFG_SHAPE --backend own --scaling "$@"; }
if has power; then
  log "SM clock and power while one own configuration runs row-wise (fp32 promotion) and block-scaled (power.txt)"
  for sc in "row --accum fp32" "block"; do
    echo "== $sc" >> "$OUT/power.txt"
    nvidia-smi --query-gpu=clocks.sm,power.draw,temperature.gpu --format=csv,noheader -lms 250 >> "$OUT/power.txt" &
    smi=$!
    own_cfg_bench $sc --reps 1500 --check-rows 0 | tail -1 | tee -a "$OUT/run.log" "$OUT/power.txt"
    kill $smi
  done
fi
if has profile; then
  log "ncu: one own configuration, row fp32 promotion vs block scales, same shape (ncu_row.txt, ncu_block.txt)"
  # launch-skip past the check and warm-up calls; LaunchStats prints the grid so the profiled call is known
  for sc in "row --accum fp32" "block"; do
    LLMK_GEMM_OWN_CFG=${POWER_CFG:-33} timeout 200 /usr/local/cuda/bin/ncu --kernel-name regex:llmk_gemm_fp8 \
      --launch-skip 6 --launch-count 1 --section LaunchStats --section SpeedOfLight --section WarpStateStats \
      --section SourceCounters --section InstructionStats \
      ./build/llmk bench gemm $OWN_CFG_SHAPE --backend own --scaling $sc --reps 10 > "$OUT/ncu_${sc%% *}.txt" 2>&1
    grep -E "Grid Size|Duration|SM Frequency|Warp Cycles Per Issued" "$OUT/ncu_${sc%% *}.txt" | tee -a "$OUT/run.log"
  done
fi

# Decode attention and the KV-cache write. Shapes B:T (Llama-3-70B heads: Hq 64,
# Hkv 8, D 128), the same list for llmk and the peer; ATTN_SHAPES overrides it,
# ATTN_PEERS the SDPA variants (bench/peer_attention.py --backends).
ATTN_SHAPES=${ATTN_SHAPES:-1:1024,1:8192,1:32768,8:1024,8:8192,8:32768,32:1024,32:8192,32:32768,1:131072,1:262144,8:131072}
# merge_rows NAME KEYS: $work/NAME_llmk.jsonl with $work/NAME_peer.jsonl (may be
# empty) -> $OUT/NAME.jsonl, with the llmk-row keys KEYS kept in every row.
merge_rows() {
  python3 bench/merge_results.py --llmk "$work/$1_llmk.jsonl" --peer "$work/$1_peer.jsonl" --commit "$commit" \
    --keep "$2" --out "$OUT/$1.jsonl" && log "merged rows: $(wc -l < "$OUT/$1.jsonl") -> bench/results/$dir/$1.jsonl"
}
if has attention; then
  log "decode attention: llmk bench attention (bf16, fp8, int4 G=32 and 128, bf16 paged 16; checked against the CPU) and torch SDPA, same shapes, merged (attention.log)"
  : > "$work/attention_llmk.jsonl"
  for fmt in "bf16" "fp8" "int4 --group 32" "int4 --group 128" "bf16 --page-size 16"; do
    echo "== llmk bench attention --format $fmt" >> "$OUT/attention.log"
    LLMK_COMMIT=$commit timeout 400 ./build/llmk bench attention --shapes "$ATTN_SHAPES" --format $fmt --json \
      >> "$work/attention_llmk.jsonl" 2>> "$OUT/attention.log" \
      || echo "bench attention --format $fmt failed or a check failed" | tee -a "$OUT/run.log"
  done
  grep -c '"checked": true' "$work/attention_llmk.jsonl" | sed 's/^/rows checked ok: /' | tee -a "$OUT/run.log"
  echo "== bench/peer_attention.py" >> "$OUT/attention.log"
  PYTHONUNBUFFERED=1 timeout 420 python3 bench/peer_attention.py --shapes "$ATTN_SHAPES" \
    --backends "${ATTN_PEERS:-default,flash,efficient,cudnn}" --out "$work/attention_peer.jsonl" >> "$OUT/attention.log" 2>&1
  tail -2 "$OUT/attention.log" | tee -a "$OUT/run.log"
  merge_rows attention format,int4_group,page_size,splits,kv_bytes,bytes,checked,max_rel_err,graph_calls,cache_copies,fill
  # per llmk row: graph times, the fastest SDPA variant and the ratio against it
  python3 - "$OUT/attention.jsonl" <<'PY' | tee -a "$OUT/run.log"
import json, sys
best = {}
for l in open(sys.argv[1]):
    r = json.loads(l)
    key = (r["backend"], r["shape"]["b"], r["shape"]["t"])
    us = r.get("llmk_us_graph") or r["llmk_us"]
    p = r.get("peer_us_graph") or r.get("peer_us")
    if key not in best:
        best[key] = [us, None, None, r.get("gbps"), r.get("frac_copy"), r.get("checked")]
    if p and (best[key][1] is None or p < best[key][1]):
        best[key][1:3] = [p, r.get("peer")]
for (be, b, t), (us, p, peer, gbps, frac, ok) in best.items():
    print("%-22s B=%-3d T=%-7d llmk %9.2f us %7.0f GB/s %5.1f%% copy  best peer %9s us (%s)  ratio %s  check %s" % (
        be, b, t, us, gbps or 0, 100 * (frac or 0), "%.2f" % p if p else "-", peer or "-",
        "%.2f" % (p / us) if p else "-", ok))
PY
fi
if has kvcache; then
  log "rope_qkv_write of 16384 prefill tokens per cache format (first rows checked bit for bit against the CPU), and rope alone (kvcache.log)"
  : > "$work/kvcache_llmk.jsonl"
  : > "$work/kvcache_peer.jsonl" # no peer in this step: the rows carry frac_copy
  for fmt in "bf16" "fp8" "fp8_tensor" "int4 --group 32" "int4 --group 128" "bf16 --page-size 16" "fp8 --page-size 16"; do
    echo "== llmk bench kvcache --t 16384 --format $fmt" >> "$OUT/kvcache.log"
    LLMK_COMMIT=$commit timeout 200 ./build/llmk bench kvcache --t 16384 --format $fmt --json \
      >> "$work/kvcache_llmk.jsonl" 2>> "$OUT/kvcache.log" \
      || echo "bench kvcache --format $fmt failed or its check failed" | tee -a "$OUT/run.log"
  done
  LLMK_COMMIT=$commit timeout 200 ./build/llmk bench kvcache --t 16384 --seqs 16 --format fp8 --json \
    >> "$work/kvcache_llmk.jsonl" 2>> "$OUT/kvcache.log" || echo "bench kvcache --seqs 16 failed" | tee -a "$OUT/run.log"
  LLMK_COMMIT=$commit timeout 200 ./build/llmk bench rope --t 16384 --h 64 --d 128 --json \
    >> "$work/kvcache_llmk.jsonl" 2>> "$OUT/kvcache.log" || echo "bench rope failed" | tee -a "$OUT/run.log"
  merge_rows kvcache format,int4_group,page_size,rope,bytes,checked,mismatched_bytes
  python3 - "$OUT/kvcache.jsonl" <<'PY' | tee -a "$OUT/run.log"
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    print("%-16s %-28s %-22s %9.2f us %7.0f GB/s %5.1f%% copy  check %s" % (r["op"], " ".join(
        "%s=%s" % kv for kv in r["shape"].items()), r["backend"], r["llmk_us"], r["gbps"],
        100 * r["frac_copy"], r.get("checked")))
PY
fi
if has pytest; then
  log "PyTorch binding: pytest python/tests on CPU and CUDA tensors (pytest.log)"
  set -o pipefail
  LLMK_COMMIT=$commit sh tests/run_python.sh build > "$OUT/pytest.log" 2>&1 || echo "python binding tests failed" | tee -a "$OUT/run.log"
  set +o pipefail
  tail -3 "$OUT/pytest.log" | tee -a "$OUT/run.log"
fi
if has layer; then
  log "decoder layer decode step: python -m llmk.demo (llmk FP8 vs PyTorch BF16, CUDA graphs, same run) -> layer.jsonl"
  : > "$OUT/layer.jsonl"
  LLMK_COMMIT=$commit LLMK_LIBRARY=$PWD/build/libllmk.so PYTHONPATH=$PWD/python PYTHONUNBUFFERED=1 \
    timeout 400 python3 -m llmk.demo ${LAYER_ARGS:-} --json "$OUT/layer.jsonl" 2>&1 | tee -a "$OUT/run.log"
fi
