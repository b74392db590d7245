#!/usr/bin/python3
"""bench/stop_latency.py BUILD_DIR: how long ntk_server keeps working after
a call's deadline passes or its client cancels it (issue 11 item 2: "stops
a Fit or PredictDistribution within 0.5 s"; docs/operations.md "Overload").

    /usr/bin/python3 bench/stop_latency.py build            # ~3-4 min idle
    /usr/bin/python3 bench/stop_latency.py build --quick    # small sizes, ~1 min
    bench/run.sh build --only=stop                          # the same, in the bench run

Each case runs on a fresh ntk_server (Fashion-MNIST rows when
dataset-fashion-mnist is installed, digits otherwise): the models a case
needs are fitted first without a deadline, then the measured call is sent
with a deadline D (or without one, cancelled by the client at D). Two
figures per case, both counted from D:
  - log: when the server's handler answered that call (the UTC time stamp
    of its "rpc=..." log line, written once the work has stopped), minus
    the client's deadline (wall clock, same machine);
  - cpu: when the server process stops burning CPU: /proc/<pid>/stat
    utime+stime sampled every 10 ms, the first 100 ms window after D with
    at most 10 ms of CPU (one clock tick) marks the stop. This is the figure
    that says the work really ended, not only the answer.
The call's status code is printed too (DEADLINE_EXCEEDED / CANCELLED
expected), and "start": when the handler began (its log line's time minus
its handler time), from D: negative, or the case timed the upload and not
the work. Afterwards the same server must answer a Predict on a small
model fitted before the case: the row says "alive". Wall-clock figures: a benchmark, not a test
(the tests check the cancellation points by count: solvers_test Cancel,
DistributionCancellation, Fit.CancelledByProgress, CholeskyTest).
"""
import argparse
import datetime
import json
import os
import re
import sys
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_client  # noqa: E402
import bench_data  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


class CpuWatch:
    """Samples a process's CPU time every 10 ms in a thread."""

    def __init__(self, pid):
        self.pid, self.samples, self._stop = pid, [], False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop:
            self.samples.append((time.monotonic(), cpu_seconds(self.pid)))
            time.sleep(0.01)

    def stop(self):
        self._stop = True
        self._t.join()

    def stopped_after(self, t0):
        """First time >= t0 starting a 100 ms window with <= one tick of CPU,
        minus t0; None if the process never went idle while sampled."""
        s = [p for p in self.samples if p[0] >= t0 - 0.001]
        j = 0
        for i in range(len(s)):
            while j < len(s) and s[j][0] < s[i][0] + 0.1:
                j += 1
            if j >= len(s):
                return None
            if s[j][1] - s[i][1] <= 1.0 / TICK + 1e-9:
                return s[i][0] - t0
        return None


def handler_end(log_path, rpc, model_id):
    """(code, unix time of the log line, handler seconds) of the first call
    `rpc` on `model_id`."""
    pat = re.compile(r"^(\S+)Z .*rpc=%s model=%s rows=\d+ code=(\w+) ms=([0-9.]+)" % (
        re.escape(rpc), re.escape(model_id)))
    with open(log_path, errors="replace") as f:
        for line in f:
            m = pat.search(line)
            if m:
                t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f")
                return (m.group(2), t.replace(tzinfo=datetime.timezone.utc).timestamp(),
                        float(m.group(3)) / 1000)
    return None, None, None


def run_case(args, stubs, data, case):
    server_args = ["--max_message_mb=512", "--max_train_rows=20000",
                   "--max_predict_rows=100000", "--max_nystrom_train_rows=100000"]
    row = {"case": case["name"], "deadline_s": case["deadline"], "mode": case["mode"]}
    with bench_client.Server(os.path.join(args.build, "server", "ntk_server"),
                             server_args) as server:
        client = bench_client.Client(server.address, stubs)
        pb = client.pb
        n = case["n"]
        x, y = data.x_train[:n], data.y_train[:n]
        spec = client.spec(depth=case.get("depth", 2), lam=case.get("lam"))
        if case.get("nystrom"):
            spec.approximation.kind = pb.Approximation.NYSTROM
        # A small model that must still answer afterwards; the case's model.
        client.fit("alive", x[:100], y[:100], client.spec(depth=1), encoding="data")
        if case["rpc"] != "Fit":
            client.fit("m", x, y, spec, encoding="data")
        q = data.x_query[:min(len(data.x_query), 100)]
        if case["rpc"] == "Fit":
            req = pb.FitRequest(model_id="m2", spec=spec, features=client.matrix(x, "data"),
                                labels=[int(v) for v in y], replace=True)
            if case.get("select"):
                sel = req.selection
                sel.folds = 3
                sel.depths.extend([1, 2, 3])
                sel.regularizations.extend([1e-2, 1e-1, 1.0])
            model_id = "m2"
        elif case["rpc"] == "Predict":
            big = np.resize(data.x_query, (case["rows"], data.x_query.shape[1]))
            req = pb.PredictRequest(model_id="m", features=client.matrix(big, "data"))
            model_id = "m"
        else:
            req = pb.PredictDistributionRequest(
                model_id="m", features=client.matrix(q, "data"),
                method=pb.DistributionMethod.Value(case["method"]),
                num_samples=case.get("samples", 0))
            model_id = "m"
        payload = req.SerializeToString()
        call = client.channel.unary_unary("/ntk.v1.NtkService/" + case["rpc"])
        watch = CpuWatch(server.proc.pid)
        D = case["deadline"]
        t_start = time.monotonic()
        t_start_wall = time.time()
        code = "OK"
        if case["mode"] == "deadline":
            try:
                call(payload, timeout=D)
            except client.grpc.RpcError as e:
                code = e.code().name
        else:
            fut = call.future(payload, timeout=3600)
            time.sleep(max(0.0, t_start + D - time.monotonic()))
            fut.cancel()
            try:
                fut.result()
            except client.grpc.FutureCancelledError:
                code = "CANCELLED"
            except client.grpc.RpcError as e:
                code = e.code().name
        t_d = t_start + D
        # Wait for the server to go idle (bounded), then read the figures.
        limit = time.monotonic() + 120
        while time.monotonic() < limit and watch.stopped_after(t_d) is None:
            time.sleep(0.1)
        time.sleep(0.2)
        watch.stop()
        row["client_code"] = code
        row["cpu_stop_after_s"] = watch.stopped_after(t_d)
        log_code, t_end, secs = (None, None, None)
        for _ in range(50):  # the log line is written as the handler returns
            log_code, t_end, secs = handler_end(server.log_path, case["rpc"], model_id)
            if log_code is not None:
                break
            time.sleep(0.1)
        if log_code is None:
            with open(server.log_path, errors="replace") as f:
                row["log_lines"] = [l.strip() for l in f if "rpc=" + case["rpc"] in l][-3:]
        row["log_code"] = log_code
        row["log_after_s"] = None if t_end is None else t_end - (t_start_wall + D)
        # When the handler started (upload and parsing done), from D: must be
        # negative for the case to measure the work and not the upload.
        row["start_s"] = None if t_end is None else t_end - secs - (t_start_wall + D)
        try:
            client.predict("alive", q[:2], encoding="data")
            row["alive"] = True
        except client.grpc.RpcError:
            row["alive"] = False
    return row


def cases(quick):
    s = 0.4 if quick else 1.0
    return [
        {"name": "Fit 2b exact (kernel, Cholesky)", "rpc": "Fit", "n": int(6000 * s),
         "deadline": 1.5 * s, "mode": "deadline"},
        {"name": "Fit 2b exact, cancelled", "rpc": "Fit", "n": int(6000 * s),
         "deadline": 3.0 * s, "mode": "cancel"},
        {"name": "Fit 2a Newton-CG", "rpc": "Fit", "n": int(3000 * s), "lam": 0.01,
         "deadline": 2.0 * s, "mode": "deadline"},
        {"name": "Fit 2a Nystrom Newton-CG", "rpc": "Fit", "n": int(20000 * s), "lam": 0.01,
         "nystrom": True, "deadline": 4.0 * s, "mode": "deadline"},
        {"name": "Fit with selection (3 folds, 9 candidates)", "rpc": "Fit",
         "n": int(1500 * s), "lam": 0.1, "select": True, "deadline": 2.0 * s,
         "mode": "deadline"},
        {"name": "Predict 8000 rows", "rpc": "Predict", "n": int(5000 * s),
         "rows": int(8000 * s), "deadline": 1.0 * s, "mode": "deadline"},
        {"name": "PD LINEARIZED first call (2a)", "rpc": "PredictDistribution",
         "n": int(2500 * s), "lam": 0.01, "method": "LINEARIZED", "deadline": 1.5 * s,
         "mode": "deadline"},
        {"name": "PD MONTE_CARLO S=64 first call (2a)", "rpc": "PredictDistribution",
         "n": int(1500 * s), "lam": 0.01, "method": "MONTE_CARLO", "samples": 64,
         "deadline": 2.0 * s, "mode": "deadline"},
        {"name": "PD LAPLACE_POSTERIOR first call, cancelled", "rpc": "PredictDistribution",
         "n": int(2500 * s), "lam": 0.01, "method": "LAPLACE_POSTERIOR",
         "deadline": 1.5 * s, "mode": "cancel"},
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build")
    ap.add_argument("--quick", action="store_true", help="smaller sizes (~1 min)")
    ap.add_argument("--only", default="", help="comma-separated case numbers (1-based)")
    ap.add_argument("--json_out", default="")
    args = ap.parse_args()
    stubs = bench_client.load_stubs()
    all_cases = cases(args.quick)
    pick = [int(i) for i in args.only.split(",") if i] or range(1, len(all_cases) + 1)
    data = bench_data.load(max(c["n"] for c in all_cases), 100)
    print("data: %s" % data.source)
    print("%-45s %7s %9s %-18s %9s %9s %9s %s" % ("case", "D (s)", "mode", "client code",
                                                 "start +s", "log +s", "cpu +s", "alive"))
    rows = []
    for i in pick:
        r = run_case(args, stubs, data, all_cases[i - 1])
        rows.append(r)
        fmt = lambda v: "-" if v is None else "%.3f" % v  # noqa: E731
        print("%-45s %7.2f %9s %-18s %9s %9s %9s %s" % (
            r["case"], r["deadline_s"], r["mode"], r["client_code"], fmt(r.get("start_s")),
            fmt(r["log_after_s"]), fmt(r["cpu_stop_after_s"]), r["alive"]), flush=True)
    worst = max((r["cpu_stop_after_s"] or 0) for r in rows)
    print("worst cpu stop after the deadline / cancel: %.3f s (target <= 0.5 s)" % worst)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
