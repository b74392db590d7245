#!/usr/bin/python3
"""bench/summarize.py RESULTS_DIR: the summary of one bench/run.sh run.

Reads the JSON files that run.sh left in RESULTS_DIR (Google Benchmark's
--benchmark_out files, fit_memory's line, ntk_loadgen's cells, meta.json)
and prints a Markdown report: every figure as a RATIO to a reference
measured in the same run, and whether each target of docs/performance.md is
met. Standard library only.

Repeated runs of one benchmark (--benchmark_repetitions) are reduced to
their minimum: on a shared, noisy machine the fastest run is the best
estimate of the work itself.
"""
import json
import os
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


UNIT = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def bench_runs(doc):
    """{key tuple: {"seconds": min real time per iteration, "counters": {...}}}.

    The key is the run name without the "name:value" and "real_time" parts:
    "BM_First/EXACT/16/iterations:1/real_time" -> ("BM_First", "EXACT", "16").
    """
    out = {}
    if not doc:
        return out
    for b in doc.get("benchmarks", []):
        if b.get("run_type", "iteration") != "iteration" or b.get("error_occurred"):
            continue
        parts = b.get("run_name", b["name"]).split("/")
        key = tuple(p for p in parts if ":" not in p and p != "real_time")
        sec = b["real_time"] * UNIT[b.get("time_unit", "ns")]
        prev = out.get(key)
        if prev is None or sec < prev["seconds"]:
            out[key] = {"seconds": sec, "counters": b, "label": b.get("label", "")}
    return out


def merged_runs(d, prefix):
    """bench_runs over every PREFIX*.json in d (alternating rounds), best time."""
    out = {}
    for name in sorted(os.listdir(d)):
        if name.startswith(prefix) and name.endswith(".json"):
            for k, v in bench_runs(load(os.path.join(d, name))).items():
                if k not in out or v["seconds"] < out[k]["seconds"]:
                    out[k] = v
    return out


def bench_section(d, name, lines, write_body):
    """One report section from the benchmark file d/name: write_body(runs,
    context) when it has runs (see bench_runs), then its errors."""
    doc = load(os.path.join(d, name))
    runs = bench_runs(doc)
    if runs:
        write_body(runs, doc.get("context", {}))
    lines.extend(f"- ERROR {e}" for e in bench_errors(doc))


def step_section(d, step, title, lines, write_body):
    """A section from d/<step>.json: write_body(doc) when the step wrote it,
    a FAILED heading when only its log d/<step>.log is there, else nothing."""
    doc = load(os.path.join(d, step + ".json"))
    if doc:
        write_body(doc)
    elif os.path.exists(os.path.join(d, step + ".log")):
        lines.extend([f"## {title}: FAILED (see {step}.log)", ""])


def bench_errors(doc):
    if not doc:
        return []
    return [f'{b["name"]}: {b.get("error_message", "")}'
            for b in doc.get("benchmarks", []) if b.get("error_occurred")]


def fmt_s(s):
    if s is None:
        return "-"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.0f} us"


def fmt_x(r):
    return "-" if r is None else f"{r:.2f}x"


def verdict(ok):
    return "MET" if ok else "MISSED"


def main():
    d = sys.argv[1]
    meta = load(os.path.join(d, "meta.json")) or {}
    lines = []
    targets = []  # (what, figure, target, met)
    w = lines.append

    w("# ntk-serve benchmark results")
    w("")
    w(f"- date: {meta.get('date', '?')}, commit {meta.get('commit', '?')}, mode `{meta.get('mode', '?')}`")
    w(f"- machine: {meta.get('nproc', '?')} cores, {meta.get('cpu', '?')}, "
      f"{meta.get('mem_gb', '?')} GB RAM, OpenBLAS `{meta.get('openblas', '?')}`")
    w(f"- threads: OMP_NUM_THREADS={meta.get('omp', '?')} OPENBLAS_NUM_THREADS={meta.get('openblas_threads', '?')}")
    w(f"- command: `{meta.get('command', '?')}`")
    w("")

    # ---- 1. linear algebra ----
    re, ro = merged_runs(d, "linalg_eigen."), merged_runs(d, "linalg_openblas.")
    peak = None
    if re or ro:
        w("## 1. GEMM and Cholesky: Eigen's own kernels vs Eigen routed to OpenBLAS")
        w("")
        w("Real time per call (best of the runs), GFLOP/s (GEMM 2N^3, LLT N^3/3 flops), "
          "and Eigen time / OpenBLAS time (> 1: OpenBLAS faster), also in process CPU time "
          "(all threads; less sensitive to load from elsewhere).")
        w("")
        w("| op | N | Eigen | OpenBLAS | Eigen GFLOP/s | OpenBLAS GFLOP/s | Eigen / OpenBLAS | same, CPU time |")
        w("|---|---|---|---|---|---|---|---|")
        sizes = sorted({int(k[1]) for k in list(re) + list(ro)})
        ratios = []
        for op, flops in (("BM_Gemm", lambda n: 2.0 * n ** 3), ("BM_Llt", lambda n: n ** 3 / 3.0)):
            for n in sizes:
                a = re.get((op, str(n)), {}).get("seconds")
                b = ro.get((op, str(n)), {}).get("seconds")
                ga = flops(n) / a * 1e-9 if a else None
                gb = flops(n) / b * 1e-9 if b else None
                r = a / b if a and b else None
                ca = re.get((op, str(n)), {}).get("counters", {}).get("cpu_s_per_iter")
                cb = ro.get((op, str(n)), {}).get("counters", {}).get("cpu_s_per_iter")
                rc = ca / cb if ca and cb else None
                if r:
                    ratios.append((op, n, r))
                if op == "BM_Gemm":
                    for g in (ga, gb):
                        if g and (peak is None or g > peak):
                            peak = g
                w(f"| {op[3:]} | {n} | {fmt_s(a)} | {fmt_s(b)} | "
                  f"{'-' if ga is None else f'{ga:.1f}'} | {'-' if gb is None else f'{gb:.1f}'} | {fmt_x(r)} | {fmt_x(rc)} |")
        w("")
        if ratios:
            wins = [r for _, _, r in ratios if r > 1]
            lo, hi = min(r for *_, r in ratios), max(r for *_, r in ratios)
            if len(wins) == len(ratios):
                w(f"**Winner: OpenBLAS** at every size and op (Eigen takes {lo:.2f}x-{hi:.2f}x "
                  "OpenBLAS's time): keep NTK_USE_OPENBLAS=ON.")
            elif not wins:
                w(f"**Winner: Eigen's own kernels** at every size and op (OpenBLAS takes "
                  f"{1 / hi:.2f}x-{1 / lo:.2f}x Eigen's time): consider NTK_USE_OPENBLAS=OFF.")
            else:
                w(f"**Mixed**: Eigen/OpenBLAS time ratio from {lo:.2f}x to {hi:.2f}x; see the table.")
            big = [r for op, n, r in ratios if n == max(sizes)]
            targets.append(("OpenBLAS vs Eigen (largest N, GEMM and LLT)",
                            ", ".join(f"{r:.2f}x" for r in big), "decides NTK_USE_OPENBLAS",
                            None))
        if peak:
            w(f"\nGEMM peak of this run: **{peak:.1f} GFLOP/s** (the reference for the "
              "flop rates below).")
        w("")

    # ---- 2. fit ----
    def fit_section(rf, ctx):
        w("## 2. Fit vs its floor (TrainKernels + one Cholesky, same run)")
        w("")
        w(f"Data: {ctx.get('data', '?')}, d = {ctx.get('d', '?')}, C = {ctx.get('classes', '?')}; "
          "ReLU depth 1, standardize + normalize_rows.")
        w("")
        w("| benchmark | N | time | ratio | CPU-time ratio | target |")
        w("|---|---|---|---|---|---|")
        refs = {int(k[1]): v["seconds"] for k, v in rf.items() if k[0] == "BM_Reference"}
        cpu = {(k[0], int(k[1])): v["counters"].get("cpu_s_per_iter") for k, v in rf.items()}

        def cr(a, b):
            x, y = cpu.get(a), cpu.get(b)
            return fmt_x(x / y if x and y else None)
        fit2b = {int(k[1]): v["seconds"] for k, v in rf.items() if k[0] == "BM_Fit2b"}
        fit2a = {int(k[1]): v["seconds"] for k, v in rf.items() if k[0] == "BM_Fit2a"}
        for n, t in sorted(refs.items()):
            w(f"| reference: TrainKernels + LLT | {n} | {fmt_s(t)} | 1.00x | 1.00x | |")
            if n in fit2b:
                r = fit2b[n] / t
                w(f"| Fit 2b (lambda = 0) | {n} | {fmt_s(fit2b[n])} | {fmt_x(r)} of reference | "
                  f"{cr(('BM_Fit2b', n), ('BM_Reference', n))} | <= 1.3x: {verdict(r <= 1.3)} |")
                targets.append((f"Fit 2b / reference, N = {n}", f"{r:.2f}x", "<= 1.3x", r <= 1.3))
        for n, t in sorted(fit2a.items()):
            if n in fit2b:
                r = t / fit2b[n]
                if n not in refs:
                    w(f"| Fit 2b (lambda = 0) | {n} | {fmt_s(fit2b[n])} | 1.00x | 1.00x | |")
                w(f"| Fit 2a (lambda = 1) | {n} | {fmt_s(t)} | {fmt_x(r)} of Fit 2b | "
                  f"{cr(('BM_Fit2a', n), ('BM_Fit2b', n))} | <= 3x: {verdict(r <= 3)} |")
                targets.append((f"Fit 2a / Fit 2b, N = {n}", f"{r:.2f}x", "<= 3x", r <= 3))
        w("")
        for k, v in sorted(rf.items()):
            c = v["counters"]
            if k[0].startswith("BM_Fit"):
                w(f"- {k[0]}/{k[1]} ({v['label']}): train accuracy {c.get('train_accuracy', 0):.4f}, "
                  f"solver iterations {c.get('solver_iterations', 0):.0f} "
                  f"(CG {c.get('cg_iterations', 0):.0f}), "
                  f"residual {c.get('residual', 0):.2e}, condition {c.get('condition', 0):.2e}")
        w("")
    bench_section(d, "fit.json", lines, fit_section)

    # ---- 3. predict ----
    def predict_section(rp, ctx):
        n = int(ctx.get("n_train", "0") or 0)
        w(f"## 3. Predict throughput (N = {n}, d = 784, C = 10, {ctx.get('data', '?')})")
        w("")
        w("Predict vs CrossKernels alone on the same rows (the reference); 'of peak' counts "
          "only the 2 B N d flops of the Gram product against this run's GEMM peak.")
        w("")
        w("| batch rows | Predict rows/s | CrossKernels rows/s | Predict / CrossKernels time | of GEMM peak |")
        w("|---|---|---|---|---|")
        for b in ("1", "64", "1024"):
            p = rp.get(("BM_Predict", b), {}).get("seconds")
            k = rp.get(("BM_CrossKernels", b), {}).get("seconds")
            rows = int(b)
            eff = (2.0 * rows * n * 784 / p * 1e-9 / peak) if (p and peak and n) else None
            w(f"| {b} | {'-' if not p else f'{rows / p:,.0f}'} | {'-' if not k else f'{rows / k:,.0f}'} | "
              f"{fmt_x(p / k if p and k else None)} | {'-' if eff is None else f'{100 * eff:.0f}%'} |")
        w("")
    bench_section(d, "predict.json", lines, predict_section)

    # ---- 4. distribution ----
    def distribution_section(rd, ctx):
        pts = int(ctx.get("points", "1") or 1)
        w(f"## 4. PredictDistribution per query point (N = {ctx.get('n_train', '?')}, "
          f"{pts} points per call, MONTE_CARLO with {ctx.get('mc_samples', '?')} solves)")
        w("")
        w("First call = builds the method's cache; warm = cache built, same seed (MONTE_CARLO "
          "caches its training solves per seed); new seed = warm model, a seed not seen before. "
          "Ratios are to Predict on the same points and model in the same run.")
        w("")
        w("| method | model | first call / point | warm / point | warm / Predict | first / warm | new seed / point |")
        w("|---|---|---|---|---|---|---|")
        for m, model in (("EXACT", "2b"), ("LINEARIZED", "2a"), ("MONTE_CARLO", "2a"),
                         ("LAPLACE_POSTERIOR", "2a")):
            f = rd.get(("BM_First", m, str(pts)), {}).get("seconds")
            wm = rd.get(("BM_Warm", m, str(pts)), {}).get("seconds")
            p = rd.get(("BM_Predict", model, str(pts)), {}).get("seconds")
            if f is None and wm is None:
                continue
            ns = rd.get(("BM_NewSeed", m, str(pts)), {}).get("seconds")
            w(f"| {m} | {model} | {fmt_s(f / pts if f else None)} | {fmt_s(wm / pts if wm else None)} | "
              f"{fmt_x(wm / p if wm and p else None)} | {fmt_x(f / wm if f and wm else None)} | "
              f"{fmt_s(ns / pts if ns else None)} |")
        for model in ("2b", "2a"):
            p = rd.get(("BM_Predict", model, str(pts)), {}).get("seconds")
            if p:
                w(f"| (Predict, reference) | {model} | | {fmt_s(p / pts)} | 1.00x | | |")
        w("")
    bench_section(d, "distribution.json", lines, distribution_section)

    # ---- 5. memory ----
    def memory_section(mem):
        n = mem["n"]
        r = mem["peak_over_matrix"]
        w(f"## 5. Peak memory of Fit (N = {n}, d = {mem['d']}, C = {mem['classes']}, "
          f"regime {mem['regime']}, {mem['data']})")
        w("")
        w("| peak RSS | one N x N double matrix | peak / matrix | Fit's increase / matrix | fit time | target |")
        w("|---|---|---|---|---|---|")
        w(f"| {mem['peak_rss_bytes'] / 1e9:.2f} GB | {mem['matrix_bytes'] / 1e9:.2f} GB | {r:.2f}x | "
          f"{mem['fit_increase_over_matrix']:.2f}x | {mem['fit_seconds']:.1f} s | <= 4x: {verdict(r <= 4)} |")
        w("")
        targets.append((f"Fit peak RSS / (N^2 * 8 B), N = {n}", f"{r:.2f}x", "<= 4x", r <= 4))
    step_section(d, "memory", "5. Peak memory of Fit", lines, memory_section)

    # ---- 6. load ----
    load_cells = load(os.path.join(d, "loadgen.json"))
    if load_cells:
        w("## 6. gRPC load on loopback (N = 1000, d = 64, C = 10, single-row requests)")
        w("")
        logged = [c.get("server_log_rpcs") for c in load_cells if c["target"] != "echo"]
        w("Requests/s as a ratio to the trivial echo service (callback API, same payload) at the "
          "same concurrency, measured in the same run. One client thread (completion queue), "
          "servers in their own processes; ntk_server "
          + ("with its default per-RPC log lines (stderr to a file)." if any(logged)
             else "with --log_rpcs=false."))
        w("")
        w("| RPC | concurrency | req/s | / echo | p50 | p99 | errors |")
        w("|---|---|---|---|---|---|---|")
        echo = {c["concurrency"]: c["rps"] for c in load_cells if c["target"] == "echo"}
        for c in load_cells:
            e = echo.get(c["concurrency"])
            r = c["rps"] / e if e else None
            w(f"| {c['target']} | {c['concurrency']} | {c['rps']:,.0f} | {fmt_x(r)} | "
              f"{c['p50_us'] / 1e3:.2f} ms | {c['p99_us'] / 1e3:.2f} ms | {c['errors']} |")
            if c["target"] == "predict" and c["concurrency"] == 64 and r is not None:
                targets.append(("Predict req/s / echo req/s, concurrency 64", f"{r:.2f}x",
                                ">= 0.5x", r >= 0.5))
        w("")

    # ---- 7. issue 10's targets (bench/targets.py, bench/e2e_vs_numpy.py) ----
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import issue10_tables
    def targets_section(tres):
        w("## 7. Uncertainty at speed (issue 10): targets")
        w("")
        w("Through ntk_server over gRPC from Python (client wall times), Fashion-MNIST, "
          "d = 784, C = 10, depth-3 ReLU; see docs/performance.md.")
        w("")
        w(issue10_tables.table(tres))
        w("")
    step_section(d, "targets", "7. Uncertainty at speed (issue 10)", lines, targets_section)
    e2e = load(os.path.join(d, "e2e.json"))
    if e2e:
        w("### End to end vs the NumPy reference (bench/e2e_vs_numpy.py)")
        w("")
        w(issue10_tables.e2e_markdown(e2e))
        w("")

    # ---- 6b. h2load (bench/h2load_bench.py prints its own table) ----
    h2log = os.path.join(d, "h2load.log")
    if os.path.exists(os.path.join(d, "h2load.json")) and os.path.exists(h2log):
        w("## 6b. Concurrency under h2load (issue 13 item 4)")
        w("")
        with open(h2log, errors="replace") as f:
            w("".join(line for line in f
                      if line.startswith("|") or "target" in line).rstrip())
        w("")
    elif os.path.exists(h2log):
        w("## 6b. Concurrency under h2load: FAILED (see h2load.log)")
        w("")

    # ---- issue 14: model selection (bench/selection_timing.cc prints its own lines) ----
    sel_log = os.path.join(d, "selection.log")
    if os.path.exists(sel_log):
        with open(sel_log, errors="replace") as f:
            text = f.read().rstrip()
        ok = "ratio selection / brute force" in text or "ratio 2b part" in text
        w("## Model selection (issue 14)" + ("" if ok else ": FAILED (see selection.log)"))
        w("")
        w("```")
        w(text)
        w("```")
        w("")

    # ---- other benchmarks (e.g. kernel_bench, owned elsewhere) ----
    known = {"linalg_eigen.json", "linalg_openblas.json", "fit.json", "predict.json",
             "distribution.json", "memory.json", "loadgen.json", "meta.json", "targets.json",
             "e2e.json", "h2load.json"}
    for name in sorted(os.listdir(d)):
        if not name.endswith(".json") or name in known or name.startswith("linalg_"):
            continue
        doc = load(os.path.join(d, name))
        runs = bench_runs(doc)
        if not runs:
            continue
        w(f"## Other: {name[:-5]}")
        w("")
        w("| benchmark | time | counters |")
        w("|---|---|---|")
        skip = {"name", "run_name", "run_type", "repetitions", "repetition_index", "threads",
                "iterations", "real_time", "cpu_time", "time_unit", "family_index",
                "per_family_instance_index", "label", "aggregate_name", "aggregate_unit"}
        for k, v in runs.items():
            cs = ", ".join(f"{ck}={cv:.4g}" for ck, cv in v["counters"].items()
                           if ck not in skip and isinstance(cv, (int, float)))
            w(f"| {'/'.join(k)} | {fmt_s(v['seconds'])} | {cs} |")
        w("")

    # ---- targets ----
    if not targets:
        print("\n".join(lines))
        return
    w("## Targets")
    w("")
    w("| what | measured | target | verdict |")
    w("|---|---|---|---|")
    for what, fig, tgt, ok in targets:
        w(f"| {what} | {fig} | {tgt} | {'-' if ok is None else verdict(ok)} |")
    missing = [s for s, f in (("linear algebra", "linalg_openblas.1.json"), ("fit", "fit.json"),
                              ("predict", "predict.json"), ("distribution", "distribution.json"),
                              ("memory", "memory.json"), ("load", "loadgen.json"))
               if not os.path.exists(os.path.join(d, f))]
    if missing:
        w("")
        w(f"Not run or failed in this run: {', '.join(missing)} (see the *.log files in {d}).")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
