#!/usr/bin/python3
"""tests/python_client_test.py NTK_SERVER: the Python client package
(client/python) installed the documented way and used against a real server.

Registered with CTest (label unit) by tests/CMakeLists.txt. Steps:

1. `python3 -m venv --system-site-packages` in a temporary directory, then
   `pip install <copy>/client/python` with PIP_NO_INDEX=1, so the test
   fails if the install needed the network. The copy holds client/python
   (without generated stubs, build/ and *.egg-info) and proto/ntk/v1/ntk.proto
   at their checkout paths: the install generates the stubs from the proto
   (setup.py, gen_stubs.py), and the source tree stays untouched.
2. This file again, with --inside, under the venv's python (cwd a temporary
   directory, so ntk_client can only come from the venv), against an
   ntk_server on 127.0.0.1:0: fit (one Fit, and FitStream in chunks),
   background fit + watch, predict, predict_distribution (columnar) against
   the points answer, an answer larger than grpcio's default 4 MiB receive
   limit, models, delete, errors, and the bearer token.

Exit 77 (CTest SKIP_RETURN_CODE) is not used: every prerequisite
(python3-venv, python3-grpcio, python3-numpy, python3-protobuf, protoc,
grpc_python_plugin) is installed by ./ntk.sh, so a missing one fails.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PACKAGE = os.path.join(ROOT, "client", "python")


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


class Server:
    """ntk_server on 127.0.0.1:0; the port from its "listening on" line."""

    def __init__(self, binary, model_dir, *flags):
        self.log = tempfile.TemporaryFile()
        cmd = [binary, "--listen=127.0.0.1:0", "--model_dir=" + model_dir, "--threads=2"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("NTK_")}
        self.proc = subprocess.Popen(cmd + list(flags), stdout=subprocess.PIPE, stderr=self.log,
                                     env=env)
        line = self.proc.stdout.readline().decode()
        m = re.match(r"listening on (\S+)", line)
        if not m:
            self.stop()
            fail("server did not start: %r\n%s" % (line, self.stderr()))
        self.address = m.group(1)

    def stderr(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)


def outside(binary):
    with tempfile.TemporaryDirectory(prefix="ntk-pyclient-") as tmp:
        venv = os.path.join(tmp, "venv")
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv], check=True)
        src = os.path.join(tmp, "checkout", "client", "python")
        shutil.copytree(PACKAGE, src, ignore=shutil.ignore_patterns(
            "build", "*.egg-info", "__pycache__", "*_pb2.py", "*_pb2_grpc.py"))
        proto = os.path.join("proto", "ntk", "v1", "ntk.proto")
        os.makedirs(os.path.dirname(os.path.join(tmp, "checkout", proto)))
        shutil.copy(os.path.join(ROOT, proto), os.path.join(tmp, "checkout", proto))
        env = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
        r = subprocess.run([os.path.join(venv, "bin", "pip"), "install", src],
                           capture_output=True, text=True, env=env, cwd=tmp)
        if r.returncode != 0:
            fail("pip install: %s%s" % (r.stdout, r.stderr))
        print("pip install ./client/python: ok (offline, fresh venv)")
        models = os.path.join(tmp, "models")
        token_file = os.path.join(tmp, "token")
        with open(token_file, "w") as f:
            f.write("s3cret\n")
        plain = Server(binary, models)
        secured = Server(binary, os.path.join(tmp, "models2"), "--auth_token_file=" + token_file)
        try:
            r = subprocess.run([os.path.join(venv, "bin", "python"), "-B", os.path.abspath(__file__),
                                "--inside", plain.address, secured.address], cwd=tmp)
        finally:
            plain.stop()
            secured.stop()
        if r.returncode != 0:
            print("server log:\n" + plain.stderr()[-4000:])
            sys.exit(r.returncode)


def blobs(n, d, classes, seed):
    import numpy as np
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(classes, d)) * 3
    y = rng.integers(0, classes, size=n)
    return centers[y] + rng.normal(size=(n, d)), y


def inside(address, secured_address):
    import numpy as np
    import ntk_client
    from ntk_client import Client, NtkError, pb
    import grpc

    if not os.path.abspath(ntk_client.__file__).startswith(os.path.abspath(sys.prefix)):
        fail("ntk_client imported from %s, not the venv %s" % (ntk_client.__file__, sys.prefix))
    c = Client(address)
    X, y = blobs(300, 8, 3, 1)

    # fit's hand-concatenated encoding parses as the message protobuf builds
    # (both dtypes, labels and targets).
    from ntk_client.client import encode_fit_request
    for dt in (np.float64, np.float32):
        header = pb.FitRequest(model_id="m", background=True, spec=ntk_client.make_spec(depth=2))
        T = np.full((300, 3), 1.0 / 3)
        want = pb.FitRequest()
        want.CopyFrom(header)
        ntk_client.to_matrix(X.astype(dt), want.features)
        want.labels.extend(y.tolist())
        ntk_client.to_matrix(T, want.targets)
        got = pb.FitRequest.FromString(encode_fit_request(header, X.astype(dt), y, T))
        if got != want:
            fail("encode_fit_request(%s) differs from the protobuf-built request" % dt.__name__)
    Q, _ = blobs(20, 8, 3, 2)

    # One Fit call (raw FLOAT64 bytes) and FitStream in chunks of 70 rows:
    # the same rows, so the same model and the same predictions (exact:
    # identical inputs to deterministic code).
    info = c.fit(X, y, "one", depth=2, regularization=0.0)
    if info.state != pb.READY or info.num_train != 300:
        fail("fit: %s" % info)
    streamed = c.fit(X, y, "chunked", depth=2, regularization=0.0, chunk_rows=70)
    if streamed.num_train != 300:
        fail("FitStream: %s" % streamed)
    p1, p2 = c.predict("one", Q), c.predict("chunked", Q)
    if p1["probabilities"].shape != (20, 3) or not np.array_equal(p1["probabilities"],
                                                                   p2["probabilities"]):
        fail("FitStream model predicts differently")
    if not np.allclose(p1["probabilities"].sum(axis=1), 1.0, atol=1e-12):
        fail("probabilities do not sum to 1")
    if not np.array_equal(p1["labels"], p1["probabilities"].argmax(axis=1)):
        fail("labels are not the argmax of the probabilities")
    print("fit / FitStream / predict: ok")

    # Model selection (docs/api.md "Model selection"): every candidate
    # reported, the chosen one (least mean NLL) is the fitted spec.
    sel = pb.ModelSelection(folds=3, depths=[1, 2], regularizations=[0.1, 1.0], seed=3)
    chosen = c.fit(X, y, "sel", selection=sel)
    rows = chosen.selection.rows
    if len(rows) != 4 or chosen.selection.folds != 3:
        fail("selection report: %s" % chosen.selection)
    best = min(range(4), key=lambda i: rows[i].mean_nll)
    if (chosen.selection.chosen != best or
            chosen.spec.kernel.depth != rows[best].kernel.depth or
            chosen.spec.training.regularization != rows[best].training.regularization):
        fail("selection chose %d, least NLL is %d: %s" % (chosen.selection.chosen, best, chosen))
    c.delete("sel")
    # The Laplace evidence criterion: no folds, the greatest evidence chosen.
    sel = pb.ModelSelection(depths=[1, 2], regularizations=[0.1, 1.0],
                            criterion=pb.LAPLACE_EVIDENCE)
    chosen = c.fit(X, y, "sel-ev", selection=sel)
    rows = chosen.selection.rows
    if (len(rows) != 4 or chosen.selection.criterion != pb.LAPLACE_EVIDENCE or
            not all(r.HasField("log_evidence") for r in rows)):
        fail("evidence selection report: %s" % chosen.selection)
    best = max(range(4), key=lambda i: rows[i].log_evidence)
    if chosen.selection.chosen != best:
        fail("evidence selection chose %d, greatest is %d" % (chosen.selection.chosen, best))
    c.delete("sel-ev")
    print("fit with selection: ok")

    # Background fit: FITTING at once, then watch() to READY; same model.
    bg = c.fit(X, y, "bg", depth=2, regularization=0.0, background=True)
    if bg.state != pb.FITTING:
        fail("background fit answered %s" % pb.ModelState.Name(bg.state))
    fractions = []
    ready = c.wait("bg", on_progress=lambda i: fractions.append(i.progress.fraction)
                   if i.state == pb.FITTING else None)
    if ready.state != pb.READY or fractions != sorted(fractions):
        fail("watch: state %s, fractions %s" % (ready.state, fractions))
    if not np.array_equal(c.predict("bg", Q)["probabilities"], p1["probabilities"]):
        fail("background fit predicts differently from the synchronous fit")
    print("background fit + watch: ok (%d updates)" % len(fractions))

    # predict_distribution (columnar) against the points answer of the same request.
    d = c.predict_distribution("one", Q, method="exact", num_samples=500, seed=3)
    stub = ntk_client.client.pb_grpc.NtkServiceStub(grpc.insecure_channel(address))
    req = pb.PredictDistributionRequest(model_id="one", method=pb.EXACT, num_samples=500, seed=3)
    ntk_client.to_matrix(Q, req.features)
    points = stub.PredictDistribution(req).points
    for i, p in enumerate(points):
        for name in ("logit_mean", "probability_mean"):
            if not np.array_equal(d[name][i], np.array(getattr(p, name))):
                fail("%s[%d] differs from the points answer" % (name, i))
        for name in ("logit_covariance", "probability_covariance"):
            if not np.array_equal(d[name][i], np.array(getattr(p, name)).reshape(3, 3)):
                fail("%s[%d] differs from the points answer" % (name, i))
        for name in ("predictive_entropy", "expected_entropy", "mutual_information"):
            if d[name][i] != getattr(p, name):
                fail("%s[%d] differs from the points answer" % (name, i))
        if d["labels"][i] != p.label:
            fail("labels[%d] differs" % i)
    if d["method"] != "exact" or len(points) != 20:
        fail("method %s, %d points" % (d["method"], len(points)))
    print("predict_distribution (columnar) == points: ok")

    # An answer above grpcio's default 4 MiB receive limit: 4000 rows x 10
    # classes, columnar: 4000 * (10 + 100 + 10 + 100 + 3) * 8 bytes = 7.1 MB.
    X10, y10 = blobs(200, 4, 10, 4)
    c.fit(X10, y10, "ten", regularization=0.0)
    big = c.predict_distribution("ten", blobs(4000, 4, 10, 5)[0], method="exact",
                                 num_samples=10, seed=1)
    if big["probability_covariance"].shape != (4000, 10, 10):
        fail("large answer: %s" % (big["probability_covariance"].shape,))
    print("7 MB answer received: ok")

    ids = [m.model_id for m in c.models()]
    if ids != sorted(["one", "chunked", "bg", "ten"]):
        fail("models: %s" % ids)
    c.delete("chunked")
    try:
        c.get("chunked")
        fail("get after delete succeeded")
    except NtkError as e:
        if e.code != grpc.StatusCode.NOT_FOUND:
            fail("get after delete: %s" % e)
    try:
        c.predict("one", np.zeros((2, 5)))  # 5 columns, the model has 8
        fail("predict with wrong columns succeeded")
    except NtkError as e:
        if e.code != grpc.StatusCode.INVALID_ARGUMENT or "features" not in e.details:
            fail("wrong columns: %s" % e)
    print("models / delete / errors: ok")

    # Bearer token.
    if Client(secured_address, token="s3cret").models() != []:
        fail("token: models not empty")
    try:
        Client(secured_address).models()
        fail("no token accepted")
    except NtkError as e:
        if e.code != grpc.StatusCode.UNAUTHENTICATED:
            fail("no token: %s" % e)
    print("token: ok")
    print("PASS")


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "--inside":
        inside(sys.argv[2], sys.argv[3])
        return
    if len(sys.argv) != 2:
        sys.exit("usage: python_client_test.py NTK_SERVER")
    start = time.monotonic()
    outside(sys.argv[1])
    print("PASS (%.1f s)" % (time.monotonic() - start))


if __name__ == "__main__":
    main()
