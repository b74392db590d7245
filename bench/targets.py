#!/usr/bin/python3
"""bench/targets.py BUILD_DIR: the targets of issue 10 ("Uncertainty at
speed"), measured through ntk_server over gRPC, as ratios from one run.

    /usr/bin/python3 bench/targets.py build [--e2e_json=FILE] [sizes...]
    bench/run.sh build --only=targets [--quick]     # the usual way

Rows of the table (d = 784, C = 10, depth-3 ReLU, standardize +
normalize_rows, Fashion-MNIST; times are the client's RPC wall times):

(a) 2b EXACT first PredictDistribution, 500 query rows, N = --n_exact
    (10000), / that model's Fit. Target <= 0.2x.
(b) 2a (lambda = --lam) LINEARIZED first call, 100 rows, N = --n_lin
    (5000), / one 2a Fit of the same data. Target <= 1x.
    At N = --n_big (20000; 0 skips it): peak RSS of a fresh server (VmHWM)
    over Fit + first LINEARIZED call, and the call's wall time. Targets
    <= 12 GiB, <= 10 minutes.
(c) 2a MONTE_CARLO first call, S = 64 (num_samples), 100 rows, N = --n_lin,
    on a second fit of the same data, / one 2a Fit (the faster of the two
    fits). Target <= 10x.
(d) end to end vs the NumPy script (from bench/e2e_vs_numpy.py's JSON,
    --e2e_json): NumPy total / service total. Target >= 5x.
(e) p50 latency of single-row Predict and PredictDistribution (EXACT) on a
    warm 2b model (N = --n_warm) while another model's (2a, N = --n_load)
    first LINEARIZED call runs, / the same p50 on the idle server
    (--probes calls of each kind before and --probes after the long call,
    one at a time, after 10 warm-up calls). Target <= 2x.

A call that fails (e.g. RESOURCE_EXHAUSTED at N = 20000 today) or exceeds
--call_timeout is reported as such. Writes --json_out; --table_only=FILE
prints the table of an earlier JSON.
"""
import argparse
import json
import os
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True
from issue10_tables import table  # noqa: E402



def log(msg):
    print("[targets %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def load_average():
    try:
        return [float(v) for v in open("/proc/loadavg").read().split()[:3]]
    except OSError:
        return None


class Runner:
    def __init__(self, args):
        import bench_client
        import bench_data
        self.bc, self.bd = bench_client, bench_data
        self.args = args
        self.binary = os.path.join(args.build, "server", "ntk_server")
        self.stubs = self.bc.load_stubs()
        self.extra = ["--max_message_mb=2048", "--max_train_rows=1000000"] + \
            args.server_args.split()

    def server(self):
        return self.bc.Server(self.binary, self.extra)

    def client(self, server):
        c = self.bc.Client(server.address, self.stubs)
        self.encoding = c.encodings()[-1]  # raw bytes when the proto has them
        return c

    def call(self, what, fn):
        """(seconds, error or None) of fn(), an RPC."""
        import grpc
        log(what + " ...")
        t0 = time.perf_counter()
        try:
            fn()
            err = None
        except grpc.RpcError as e:
            err = "%s: %s" % (e.code().name, (e.details() or "")[:200])
        dt = time.perf_counter() - t0
        log("%s: %.2f s%s" % (what, dt, "" if err is None else " FAILED " + err))
        return dt, err

    def fit(self, client, model_id, data, lam):
        spec = client.spec(depth=self.args.depth, lam=lam)
        return self.call("Fit %s N = %d" % (model_id, len(data.x_train)),
                         lambda: client.fit(model_id, data.x_train, data.y_train, spec,
                                            self.encoding))

    def first(self, client, model_id, x, method, num_samples=0):
        return self.call("first %s %s, %d rows" % (method, model_id, len(x)),
                         lambda: client.distribution(model_id, x, method=method,
                                                     num_samples=num_samples,
                                                     encoding=self.encoding))

    # (a)
    def exact(self):
        a = self.args
        data = self.bd.load(a.n_exact, 500)
        with self.server() as srv:
            c = self.client(srv)
            fit_s, fit_err = self.fit(c, "t-exact", data, None)
            first_s, err = (None, "no model") if fit_err else \
                self.first(c, "t-exact", data.x_query[:500], "EXACT")
            c.close()
        return {"n": len(data.x_train), "data": data.source, "fit_s": fit_s,
                "fit_error": fit_err, "first_s": first_s, "error": err}

    # (b) and (c)
    def linearized_and_mc(self):
        a = self.args
        data = self.bd.load(a.n_lin, 100)
        x = data.x_query[:100]
        with self.server() as srv:
            c = self.client(srv)
            fit1, e1 = self.fit(c, "t-lin", data, a.lam)
            lin_s, lin_err = (None, "no model") if e1 else self.first(c, "t-lin", x, "LINEARIZED")
            c.delete("t-lin")
            fit2, e2 = self.fit(c, "t-mc", data, a.lam)
            mc_s, mc_err = (None, "no model") if e2 else \
                self.first(c, "t-mc", x, "MONTE_CARLO", a.mc_samples)
            c.close()
        fits = [f for f, e in ((fit1, e1), (fit2, e2)) if e is None]
        return {"n": len(data.x_train), "data": data.source,
                "fit_s": min(fits) if fits else None, "fits_s": [fit1, fit2],
                "linearized_s": lin_s, "linearized_error": lin_err,
                "mc_s": mc_s, "mc_error": mc_err, "mc_samples": a.mc_samples}

    # (b) at N = n_big
    def linearized_big(self):
        a = self.args
        data = self.bd.load(a.n_big, 100)
        with self.server() as srv:
            c = self.client(srv)
            fit_s, fit_err = self.fit(c, "t-big", data, a.lam)
            lin_s, err = (None, "no model") if fit_err else \
                self.first(c, "t-big", data.x_query[:100], "LINEARIZED")
            rss = srv.peak_rss_bytes()
            c.close()
        return {"n": len(data.x_train), "fit_s": fit_s, "fit_error": fit_err,
                "linearized_s": lin_s, "error": err, "peak_rss_bytes": rss}

    # (e)
    def latency(self):
        a = self.args
        warm = self.bd.load(a.n_warm, 1)
        load = self.bd.load(a.n_load, 100)
        probe = warm.x_query[:1]
        with self.server() as srv:
            c = self.client(srv)
            self.fit(c, "t-warm", warm, None)
            self.fit(c, "t-load", load, a.lam)
            c.distribution("t-warm", probe, method="EXACT")  # builds the EXACT cache

            def sample(kind):
                t0 = time.perf_counter()
                if kind == "Predict":
                    c.predict("t-warm", probe)
                else:
                    c.distribution("t-warm", probe, method="EXACT")
                return time.perf_counter() - t0

            kinds = ("Predict", "PredictDistribution")

            def idle_phase():
                got = {k: [] for k in kinds}
                for _ in range(a.probes):
                    for k in kinds:
                        got[k].append(sample(k))
                return got
            for _ in range(10):  # warm-up: connections, threads, caches
                for k in kinds:
                    sample(k)
            before = idle_phase()
            loaded = {k: [] for k in kinds}
            result = {}

            def long_call():
                result["s"], result["error"] = self.first(
                    c, "t-load", load.x_query[:100], "LINEARIZED")
            th = threading.Thread(target=long_call)
            th.start()
            time.sleep(a.probe_delay)  # let the long call get past its request decoding
            while th.is_alive():
                for k in kinds:
                    s = sample(k)
                    if th.is_alive():
                        loaded[k].append(s)
            th.join()
            after = idle_phase()
            c.close()
        out = {"n_warm": a.n_warm, "n_load": len(load.x_train),
               "long_call_s": result.get("s"), "long_call_error": result.get("error")}
        for k in kinds:
            idle = before[k] + after[k]
            out[k] = {"idle_p50_s": statistics.median(idle), "idle_count": len(idle),
                      "idle_before_p50_s": statistics.median(before[k]),
                      "idle_after_p50_s": statistics.median(after[k]),
                      "loaded_p50_s": statistics.median(loaded[k]) if loaded[k] else None,
                      "loaded_count": len(loaded[k])}
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build", nargs="?", help="build directory holding server/ntk_server")
    ap.add_argument("--only", default="exact,lin,big,latency",
                    help="comma list of exact, lin (b and c), big, latency")
    ap.add_argument("--n_exact", type=int, default=10000)
    ap.add_argument("--n_lin", type=int, default=5000)
    ap.add_argument("--n_big", type=int, default=0, help="20000 for the issue's size; 0 skips")
    ap.add_argument("--n_warm", type=int, default=1000)
    ap.add_argument("--n_load", type=int, default=3000)
    ap.add_argument("--lam", type=float, default=0.01)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--mc_samples", type=int, default=64)
    ap.add_argument("--probes", type=int, default=200, help="idle calls of each kind")
    ap.add_argument("--probe_delay", type=float, default=0.5)
    ap.add_argument("--server_args", default="")
    ap.add_argument("--e2e_json", default="")
    ap.add_argument("--json_out", default="")
    ap.add_argument("--table_only", default="", help="print the table of this JSON")
    args = ap.parse_args()
    if args.table_only:
        print(table(json.load(open(args.table_only))))
        return
    if not args.build:
        ap.error("BUILD_DIR is required")
    only = set(args.only.split(","))
    res = {"server_args": args.server_args, "sizes": vars(args)}
    start = load_average()
    if args.e2e_json and os.path.exists(args.e2e_json):
        res["e2e"] = json.load(open(args.e2e_json))
    r = Runner(args)
    steps = [("exact", r.exact), ("lin", r.linearized_and_mc), ("big", r.linearized_big),
             ("latency", r.latency)]
    for name, fn in steps:
        if name not in only or (name == "big" and args.n_big <= 0):
            continue
        res[name] = fn()
        res["load_average"] = [start, load_average()]
        if args.json_out:  # after every step: an interrupted run keeps what it measured
            with open(args.json_out, "w") as f:
                json.dump(res, f, indent=1)
    print(table(res))


if __name__ == "__main__":
    main()
