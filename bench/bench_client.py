"""bench/bench_client.py: an ntk_server subprocess and a timed Python client
for the Python benchmarks and tests (bench/e2e_vs_numpy.py, bench/targets.py,
tests/numpy_reference_test.py).

- Server: `ntk_server --listen=127.0.0.1:0 --model_dir=<temp>` plus extra
  flags; the port is read from its "listening on ..." line (stdout; with
  --http_listen also "http listening on ..." into http_address), then
  grpc.health.v1 is polled. Its stderr (one line per RPC with the server's
  own handler time, "rpc=... model=... ms=...") goes to a file, parsed by
  server_ms(). Peak RSS from /proc/<pid>/status (VmHWM).
- Stubs: generated from proto/ntk/v1/ntk.proto by examples/python/gen_stubs.py
  into a directory (a temporary one by default).
- Encodings: "values" (repeated double, the round-1 wire) and "data" (raw
  little-endian bytes, the round-2 Matrix.data; only when the generated
  Matrix has that field). A response is decoded in the encoding it came in.
- Timed calls: requests are serialized by us (encode time), sent as bytes
  (RPC time = the call's wall time) and the response parsed by us (decode
  time), so the three stages are measured apart.

Needs Debian's python3-grpcio, python3-protobuf, python3-numpy.
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MESSAGE_BYTES = 1 << 30  # client-side message limit (the server has --max_message_mb)


def load_stubs(stubs_dir=None):
    """(ntk_pb2, ntk_pb2_grpc, health_pb2, health_pb2_grpc), generated into
    stubs_dir (default: a temporary directory kept for the process)."""
    if stubs_dir is None:
        stubs_dir = tempfile.mkdtemp(prefix="ntk-bench-stubs-")
    if not os.path.exists(os.path.join(stubs_dir, "proto", "ntk", "v1", "ntk_pb2.py")):
        sys.path.insert(0, os.path.join(ROOT, "examples", "python"))
        import gen_stubs
        gen_stubs.generate(stubs_dir)
    sys.path.insert(0, stubs_dir)
    from proto.ntk.v1 import ntk_pb2, ntk_pb2_grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    return ntk_pb2, ntk_pb2_grpc, health_pb2, health_pb2_grpc


class Server:
    """An ntk_server subprocess on 127.0.0.1 (ephemeral port). Use as a
    context manager or call stop()."""

    def __init__(self, binary, extra_args=(), log_path=None, env=None):
        self.dir = tempfile.TemporaryDirectory(prefix="ntk-bench-server-")
        self.log_path = log_path or os.path.join(self.dir.name, "server.log")
        self._log = open(self.log_path, "ab")
        cmd = [binary, "--listen=127.0.0.1:0",
               "--model_dir=" + os.path.join(self.dir.name, "models")] + list(extra_args)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._log, env=env)
        self.address = None
        deadline = time.monotonic() + 60
        line = b""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = re.match(rb"listening on (\S+)", line)
            if m:
                self.address = m.group(1).decode()
                break
        # With --http_listen the server prints "http listening on ..." next.
        self.http_address = None
        if self.address is not None and any(a.startswith("--http_listen=") and a != "--http_listen="
                                            for a in extra_args):
            m = re.match(rb"http listening on (\S+)", self.proc.stdout.readline())
            self.http_address = m.group(1).decode() if m else None
            if self.http_address is None:
                self.address = None
        if self.address is None:
            self.stop()
            raise RuntimeError("ntk_server did not start (%s); log:\n%s" % (
                line, open(self.log_path, errors="replace").read()[-2000:]))
        # Drain stdout so the server never blocks on a full pipe.
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def peak_rss_bytes(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return None

    def server_ms(self, rpc, model_id):
        """Handler times (ms) of the server's log lines for this RPC and model,
        in order."""
        pat = re.compile(r"rpc=%s model=%s rows=\d+ code=(\w+) ms=([0-9.]+)" % (
            re.escape(rpc), re.escape(model_id)))
        out = []
        with open(self.log_path, errors="replace") as f:
            for line in f:
                m = pat.search(line)
                if m:
                    out.append(float(m.group(2)) if m.group(1) == "OK" else None)
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        self.dir.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Client:
    """A channel to one server with timed, pre-serialized calls."""

    def __init__(self, address, stubs):
        import grpc
        self.grpc = grpc
        self.pb, pb_grpc, health_pb2, health_pb2_grpc = stubs
        opts = [("grpc.max_send_message_length", MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MESSAGE_BYTES)]
        self.channel = grpc.insecure_channel(address, options=opts)
        health = health_pb2_grpc.HealthStub(self.channel)
        deadline = time.monotonic() + 30
        while True:
            try:
                if health.Check(health_pb2.HealthCheckRequest(), timeout=2).status == \
                        health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server %s not serving after 30 s" % address)
            time.sleep(0.1)
        self.stub = pb_grpc.NtkServiceStub(self.channel)
        self._raw = {}
        self.has_data_field = "data" in self.pb.Matrix.DESCRIPTOR.fields_by_name
        self.has_columnar = "columnar" in \
            self.pb.PredictDistributionRequest.DESCRIPTOR.fields_by_name

    def encodings(self):
        return ["values", "data"] if self.has_data_field else ["values"]

    # ---- encoding ----
    def matrix(self, a, encoding="values"):
        a = np.ascontiguousarray(a, dtype="<f8")
        m = self.pb.Matrix(rows=a.shape[0], cols=a.shape[1])
        if encoding == "data":
            m.data = a.tobytes()
            m.dtype = self.pb.FLOAT64
        else:
            m.values.extend(a.ravel())
        return m

    @staticmethod
    def to_array(m):
        if m.rows * m.cols == 0:
            return np.zeros((m.rows, m.cols))
        if len(getattr(m, "data", b"")):
            return np.frombuffer(m.data, dtype="<f8").reshape(m.rows, m.cols)
        return np.array(m.values, dtype=np.float64).reshape(m.rows, m.cols)

    def spec(self, depth=3, lam=None, activation="relu", standardize=True,
             normalize_rows=True, label_smoothing=None):
        pb = self.pb
        tr = pb.TrainingSpec(loss=pb.CROSS_ENTROPY)
        if lam is not None:
            tr.regularization = lam
        if label_smoothing is not None:
            tr.label_smoothing = label_smoothing
        return pb.ModelSpec(
            kernel=pb.KernelSpec(activation=pb.RELU if activation == "relu" else pb.ERF,
                                 depth=depth),
            training=tr,
            preprocessing=pb.Preprocessing(standardize=standardize,
                                           normalize_rows=normalize_rows))

    # ---- timed calls ----
    def timed(self, method, build, response_cls, timeout=3600):
        """Runs build() -> request message, serializes it, calls `method`
        with the bytes and parses the answer. Returns (response, times) with
        times = {"encode": s, "rpc": s, "decode": s} (decode = parse only)."""
        t0 = time.perf_counter()
        payload = build().SerializeToString()
        t1 = time.perf_counter()
        if method not in self._raw:
            self._raw[method] = self.channel.unary_unary("/ntk.v1.NtkService/" + method)
        raw = self._raw[method](payload, timeout=timeout)
        t2 = time.perf_counter()
        resp = response_cls.FromString(raw)
        t3 = time.perf_counter()
        return resp, {"encode": t1 - t0, "rpc": t2 - t1, "decode": t3 - t2}

    def fit(self, model_id, x, labels, spec, encoding="values"):
        pb = self.pb
        return self.timed("Fit", lambda: pb.FitRequest(
            model_id=model_id, spec=spec, features=self.matrix(x, encoding),
            labels=[int(v) for v in labels], replace=True), pb.FitResponse)

    def predict(self, model_id, x, encoding="values"):
        pb = self.pb
        resp, t = self.timed("Predict", lambda: pb.PredictRequest(
            model_id=model_id, features=self.matrix(x, encoding)), pb.PredictResponse)
        t0 = time.perf_counter()
        out = {"probabilities": self.to_array(resp.probabilities),
               "logits": self.to_array(resp.logits)}
        t["decode"] += time.perf_counter() - t0
        return out, t

    def distribution(self, model_id, x, method="UNSPECIFIED", num_samples=0, seed=0,
                     encoding="values"):
        """Per-point arrays: logit_mean (M x C), logit_covariance (M x C x C),
        probability_mean, probability_covariance, predictive_entropy,
        expected_entropy, mutual_information, label; and the times."""
        pb = self.pb
        columnar = self.has_columnar and encoding == "data"

        def build():
            req = pb.PredictDistributionRequest(
                model_id=model_id, features=self.matrix(x, encoding),
                method=pb.DistributionMethod.Value(
                    "METHOD_UNSPECIFIED" if method == "UNSPECIFIED" else method),
                num_samples=num_samples, seed=seed)
            if columnar:
                req.columnar = True
            return req
        import grpc
        try:
            resp, t = self.timed("PredictDistribution", build, pb.PredictDistributionResponse)
        except grpc.RpcError as e:
            # A server whose proto has the field but that does not build the
            # columnar answer yet refuses it (UNIMPLEMENTED naming it): ask
            # again per point, and from now on.
            if not (columnar and e.code() == grpc.StatusCode.UNIMPLEMENTED and
                    "columnar" in (e.details() or "")):
                raise
            self.has_columnar = columnar = False
            resp, t = self.timed("PredictDistribution", build, pb.PredictDistributionResponse)
        t0 = time.perf_counter()
        out = self.decode_distribution(resp)
        t["decode"] += time.perf_counter() - t0
        return out, t

    def decode_distribution(self, resp):
        if resp.HasField("batch") if self.has_columnar else False:
            b = resp.batch
            m = b.logit_mean.rows
            c = b.logit_mean.cols
            ent = self.to_array(b.entropies)
            return {"logit_mean": self.to_array(b.logit_mean),
                    "logit_covariance": self.to_array(b.logit_covariance).reshape(m, c, c),
                    "probability_mean": self.to_array(b.probability_mean),
                    "probability_covariance":
                        self.to_array(b.probability_covariance).reshape(m, c, c),
                    "predictive_entropy": ent[:, 0], "expected_entropy": ent[:, 1],
                    "mutual_information": ent[:, 2], "label": np.array(b.labels)}
        pts = resp.points
        m = len(pts)
        c = len(pts[0].logit_mean) if m else 0
        vec = lambda f: np.array([list(getattr(p, f)) for p in pts])  # noqa: E731
        return {"logit_mean": vec("logit_mean"),
                "logit_covariance": vec("logit_covariance").reshape(m, c, c),
                "probability_mean": vec("probability_mean"),
                "probability_covariance": vec("probability_covariance").reshape(m, c, c),
                "predictive_entropy": np.array([p.predictive_entropy for p in pts]),
                "expected_entropy": np.array([p.expected_entropy for p in pts]),
                "mutual_information": np.array([p.mutual_information for p in pts]),
                "label": np.array([p.label for p in pts])}

    def delete(self, model_id):
        self.stub.DeleteModel(self.pb.DeleteModelRequest(model_id=model_id), timeout=60)

    def close(self):
        self.channel.close()
