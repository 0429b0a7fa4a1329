"""Timing and recording of PyTorch peers, the same way for every op.

Shared by bench/peer_quantize.py, bench/peer_gemm.py and bench/peer_attention.py
(each puts its own directory on sys.path and imports this module):

  load_torch / import_torch  torch, imported after the arguments are parsed
                             (so --help needs no torch)
  Timer                      CUDA events around every call and CUDA-graph
                             replay, the L2 cache flushed (256 MiB written, not
                             timed) before every timed call or replay; median
  rotation_copies            how many operand copies a graph rotates among so
                             that no captured call finds its operand in L2
  time_large_copy            the large device-to-device copy (bandwidth reference)
  RowWriter                  the JSON-lines output (one row per line, written
                             and flushed as it comes) and its stdout table
  note, brief_exc, rnd, is_fatal, context_ok, ContextBroken
  parse_dims                 comma-separated AxB[xC] lists of positive sizes (argparse types)

Nothing here needs torch until load_torch() or import_torch() has run.
"""

import argparse
import json
import statistics
import sys

FLUSH_BYTES = 256 << 20  # written before every timed call: more than any L2
MIN_REPS = 5             # the fewest repeats a capped measurement takes

torch = None  # set by import_torch()


# ---------------------------------------------------------------------------
# torch
# ---------------------------------------------------------------------------

def import_torch():
    """torch (also this module's), or None with an error on stderr when it is missing."""
    global torch
    try:
        import torch as _torch
    except ImportError as e:
        print("error: PyTorch is not installed (%s)" % e, file=sys.stderr)
        return None
    torch = _torch
    return torch


def load_torch():
    """import_torch(), and None with an error on stderr when torch sees no CUDA device."""
    t = import_torch()
    if t is not None and not t.cuda.is_available():
        print("error: no CUDA device visible to torch (torch %s, built for CUDA %s)"
              % (t.__version__, t.version.cuda), file=sys.stderr)
        return None
    return t


def peer_version(triton=True):
    """"torch X" and, where triton imports (and triton is set), ", triton Y"."""
    version = "torch " + torch.__version__
    if triton:
        try:
            import triton as _triton
            version += ", triton " + _triton.__version__
        except Exception:  # noqa: BLE001 - triton is optional here
            pass
    return version


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------

class Timer:
    """CUDA-event and CUDA-graph timing, the L2 cache flushed before every timed
    call or replay (not timed); medians in microseconds.

    max_s None: every measurement takes reps (graph_reps) repeats. Otherwise as
    many as fit in max_s seconds, flushes included, by an estimate from two
    calls (replays): between MIN_REPS and reps (graph_reps).
    """

    def __init__(self, reps, warmup, graph_calls, graph_reps, max_s=None):
        self.reps = reps
        self.warmup = warmup
        self.graph_calls = graph_calls
        self.graph_reps = graph_reps
        self.max_s = max_s
        self.flush_buf = torch.empty(FLUSH_BYTES, dtype=torch.int8, device="cuda")
        if max_s is not None:
            for _ in range(3):
                self.flush()
            torch.cuda.synchronize()
            self.flush_us = self._time_once(self.flush, 5)

    def flush(self):
        self.flush_buf.zero_()

    @staticmethod
    def _time_once(fn, n):
        """Mean microseconds of n back-to-back fn() calls (no flush): a rough estimate."""
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(n):
            fn()
        b.record()
        torch.cuda.synchronize()
        return a.elapsed_time(b) * 1000.0 / n

    def _count(self, fn, limit):
        """Repeats of fn for one measurement: limit, or with max_s those that fit in it."""
        if self.max_s is None:
            return limit
        fit = int(self.max_s * 1e6 / max(self._time_once(fn, 2) + self.flush_us, 1.0))
        return max(min(MIN_REPS, limit), min(limit, fit))

    def _median(self, fn, reps):
        """Median microseconds of reps fn() calls, the L2 flushed before each."""
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
        for i in range(reps):
            self.flush()
            starts[i].record()
            fn()
            ends[i].record()
        torch.cuda.synchronize()
        return statistics.median(s.elapsed_time(e) * 1000.0 for s, e in zip(starts, ends))

    def events(self, fn, reps=None):
        """(median microseconds of fn(), repeats) after warm-up; reps caps the repeats
        (default self.reps)."""
        for _ in range(self.warmup):
            fn()
        torch.cuda.synchronize()
        reps = self._count(fn, reps or self.reps)
        return self._median(fn, reps), reps

    def graph(self, fns, calls=None):
        """(median microseconds per call, replays) of a CUDA graph of `calls` (default
        graph_calls) calls that cycle through the list fns. fns may be one callable:
        it is warmed up three times (a list: its first three)."""
        if callable(fns):
            fns = [fns] * 3
        if calls is None:
            calls = self.graph_calls
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for f in fns[:3]:
                f()
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.synchronize()
        g = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(g):
                for i in range(calls):
                    fns[i % len(fns)]()
            g.replay()
            if self.max_s is None:
                g.replay()  # fixed repeats: a second warm-up (else _count replays twice)
            torch.cuda.synchronize()
            reps = self._count(g.replay, self.graph_reps)
            med = self._median(g.replay, reps)
        finally:
            del g
        return med / calls, reps


def parse_dims(text, names, example):
    """[(int, ...)] from a comma-separated list of `names` ("MxNxK", "NxK", ...)
    sizes joined by x, each positive; argparse.ArgumentTypeError otherwise."""
    count = len(names.split("x"))
    out = []
    for item in text.split(","):
        item = item.strip().lower()
        if not item:
            continue
        parts = item.split("x")
        if len(parts) != count or not all(p.strip().isdigit() for p in parts):
            raise argparse.ArgumentTypeError("bad size %r: expected %s, e.g. %s" % (item, names, example))
        dims = tuple(int(p) for p in parts)
        if min(dims) <= 0:
            raise argparse.ArgumentTypeError("bad size %r: sizes must be positive" % item)
        out.append(dims)
    if not out:
        raise argparse.ArgumentTypeError("no sizes given")
    return out


def rotation_copies(nbytes, total, most):
    """How many copies of an operand of nbytes a CUDA graph rotates among so that
    no captured call finds its operand in L2 (as in a model, whose every layer
    has its own): enough for `total` bytes, 1 to `most`."""
    return max(1, min(most, -(-total // nbytes)))


def time_large_copy(timer, gib, k=16384):
    """(m, k, us, reps): timer.events of y.copy_(x), x and y bf16 [m, k] of about gib GiB
    (m at least 1)."""
    m = max(1, int(gib * (1 << 30)) // (2 * k))
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    y = torch.empty_like(x)
    us, reps = timer.events(lambda: y.copy_(x))
    return m, k, us, reps  # x and y are freed here


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------

def rnd(v, nd=3):
    return None if v is None else round(float(v), nd)


def note(msg, err=False):
    f = sys.stderr if err else sys.stdout
    print("note: " + msg, file=f)
    f.flush()


def brief_exc(e, width=240):
    """The exception's type and the first line of its message (at most width characters)."""
    lines = str(e).strip().splitlines()
    return type(e).__name__ + (": " + lines[0][:width] if lines else "")


def read_jsonl_rows(paths, keep, key):
    """The rows (JSON objects, one per line) of the files at paths for which
    keep(row) holds; a later row with the same key(row) replaces an earlier
    one in its place. A line that is not JSON is skipped with a warning."""
    rows = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for i, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    print("warning: %s:%d is not JSON, skipped" % (path, i), file=sys.stderr)
                    continue
                if isinstance(row, dict) and keep(row):
                    rows[key(row)] = row
    return list(rows.values())


def main_modes(args, summarize, print_summary, dry_run, run):
    """The modes of a peer script that summarizes its own results: --summary
    FILE... (tables, or one JSON object with --summary-json; 1 if a file
    cannot be read), --dry-run, else the timed run."""
    if args.summary:
        try:
            summ = summarize(args.summary)
        except OSError as e:
            print("error: %s" % e, file=sys.stderr)
            return 1
        if args.summary_json:
            print(json.dumps(summ, indent=1))
        else:
            print_summary(summ)
        return 0
    if args.dry_run:
        return dry_run(args)
    return run(args)


def pct(frac):
    """A fraction for the stdout table: "75%", or "-" for None."""
    return "-" if frac is None else "%.0f%%" % (100 * frac)


class RowWriter:
    """The JSON-lines output file (overwritten; every row written and flushed at
    once, so a run cut short keeps the rows it finished, each with peer_version)
    and the stdout table, whose header line is the class's `header`."""

    header = ""

    def __init__(self, path, device, peer_version):
        self.f = open(path, "w", encoding="utf-8")
        self.device = device
        self.peer_version = peer_version
        self.copy_gbps = None  # the large copy's bandwidth, once timed
        print(self.header)
        sys.stdout.flush()

    def _write(self, row):
        row["peer_version"] = self.peer_version
        self.f.write(json.dumps(row) + "\n")
        self.f.flush()

    def _frac_copy(self, row, gbps, nd=3):
        """gbps over the copy bandwidth, put into row as frac_copy; None before a copy."""
        if not self.copy_gbps:
            return None
        frac = gbps / self.copy_gbps
        row["frac_copy"] = rnd(frac, nd)
        return frac

    def close(self):
        self.f.close()


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

class ContextBroken(Exception):
    pass


FATAL = ("CUDA error", "illegal memory access", "unspecified launch failure")


def is_fatal(e, benign=(), fatal=()):
    """A CUDA error other than out-of-memory leaves the context unusable.

    benign: message parts that make an error harmless all the same; fatal: more
    parts that make it fatal."""
    s = str(e)
    if isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in s:
        return False
    if any(b in s for b in benign):
        return False
    return any(f in s for f in FATAL + tuple(fatal))


def context_ok():
    """False when the CUDA context no longer works (checked after a caught error)."""
    try:
        torch.cuda.synchronize()
        return True
    except Exception:  # noqa: BLE001 - any failure here means the context is gone
        return False
