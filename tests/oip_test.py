#!/usr/bin/python3
"""tests/oip_test.py NTK_SERVER: the Open Inference Protocol (V2) and the
HTTP listener of ntk_server, driven by off-the-shelf clients.

Registered with CTest (label unit) by tests/CMakeLists.txt. Exit 77 (CTest
SKIP_RETURN_CODE) when /usr/bin/python3 lacks numpy, grpc or grpc_tools.

- gRPC: Python stubs generated from
  third_party/open-inference-protocol/proto/inference/grpc_predict_v2.proto
  with grpc_tools (python3-grpc-tools), the way any OIP user makes them.
- HTTP: urllib against --http_listen.
Checks:
1. ModelInfer (typed FP64 and FP32, raw FP64 and FP32, REST JSON) answers
   equal ntk.v1 Predict / PredictDistribution on the same model and rows,
   exactly: both bindings run the same core call on the same doubles (FP32
   rows are compared with an ntk.v1 FLOAT32 request: the same rounding), and
   REST JSON prints doubles so that they parse back to the same bits.
2. Metadata, readiness, health, the repository index.
3. Bad input: one table per binding, status code and the field named.
4. /metrics: request counters move by exactly the calls this test sent.
5. The bearer token over HTTP and OIP gRPC (scheme in any case; health
   probes need none); a taken --http_listen port stops the server.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODEL = "oip-m"
N, D, C, M = 60, 4, 3, 5


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def expect(cond, msg):
    if not cond:
        fail(msg)


def load_oip_stubs(out_dir):
    from grpc_tools import protoc
    proto_dir = os.path.join(ROOT, "third_party", "open-inference-protocol", "proto", "inference")
    rc = protoc.main(["grpc_tools.protoc", "-I" + proto_dir, "--python_out=" + out_dir,
                      "--grpc_python_out=" + out_dir,
                      os.path.join(proto_dir, "grpc_predict_v2.proto")])
    expect(rc == 0, "grpc_tools.protoc failed on grpc_predict_v2.proto")
    sys.path.insert(0, out_dir)
    import grpc_predict_v2_pb2 as pb
    import grpc_predict_v2_pb2_grpc as pb_grpc
    return pb, pb_grpc


class Http:
    def __init__(self, address, token=None):
        self.base = "http://" + address
        self.token = token

    def call(self, method, path, body=None, auth=None):
        """(status, parsed JSON or text)."""
        data = None if body is None else (body if isinstance(body, bytes)
                                          else json.dumps(body).encode())
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if auth is not None:
            req.add_header("Authorization", auth)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text


def oip_outputs(resp):
    """name -> numpy array shaped as answered (raw or typed contents)."""
    import numpy as np
    out = {}
    for i, t in enumerate(resp.outputs):
        dtype = "<i8" if t.datatype == "INT64" else "<f8"
        if len(resp.raw_output_contents):
            a = np.frombuffer(resp.raw_output_contents[i], dtype=dtype)
        elif t.datatype == "INT64":
            a = np.array(t.contents.int64_contents, dtype=np.int64)
        else:
            a = np.array(t.contents.fp64_contents, dtype=np.float64)
        out[t.name] = a.reshape(list(t.shape))
    return out


def rest_outputs(body):
    import numpy as np
    return {o["name"]: np.array(o["data"], dtype=np.int64 if o["datatype"] == "INT64"
                                else np.float64).reshape(o["shape"]) for o in body["outputs"]}


def same(name, got, want):
    import numpy as np
    expect(got.shape == want.shape, "%s: shape %s != %s" % (name, got.shape, want.shape))
    expect(np.array_equal(got, want), "%s: differs from ntk.v1 (max |diff| %g)" % (
        name, float(np.max(np.abs(got - want))) if got.size else 0.0))


def infer_request(pb, x, dtype="FP64", raw=False, outputs=(), parameters=None, model=MODEL):
    import numpy as np
    req = pb.ModelInferRequest(model_name=model, id="req-1")
    t = req.inputs.add(name="features", datatype=dtype, shape=list(x.shape))
    arr = np.ascontiguousarray(x, dtype="<f8" if dtype == "FP64" else "<f4")
    if raw:
        req.raw_input_contents.append(arr.tobytes())
    elif dtype == "FP64":
        t.contents.fp64_contents.extend(arr.ravel())
    else:
        t.contents.fp32_contents.extend(arr.ravel())
    for o in outputs:
        req.outputs.add(name=o)
    for k, v in (parameters or {}).items():
        p = req.parameters[k]
        if isinstance(v, str):
            p.string_param = v
        else:
            p.int64_param = v
    return req


def rest_body(x, outputs=(), parameters=None, datatype="FP64"):
    body = {"id": "req-1", "inputs": [{"name": "features", "datatype": datatype,
                                       "shape": list(x.shape), "data": x.tolist()}]}
    if outputs:
        body["outputs"] = [{"name": o} for o in outputs]
    if parameters:
        body["parameters"] = parameters
    return body


PREDICT_OUT = ["probabilities", "labels", "logits"]
DIST_OUT = ["probability_mean", "probability_covariance", "logit_mean", "logit_covariance",
            "predictive_entropy", "expected_entropy", "mutual_information"]


def check_predict(client, stub, pb, http, q):
    import numpy as np
    npb = client.pb
    print("1a. ModelInfer (Predict outputs) == ntk.v1 Predict")
    for dtype, npdtype, v1dtype in (("FP64", "<f8", npb.FLOAT64), ("FP32", "<f4", npb.FLOAT32)):
        arr = np.ascontiguousarray(q, dtype=npdtype)
        ref = client.stub.Predict(npb.PredictRequest(model_id=MODEL, features=npb.Matrix(
            rows=M, cols=D, data=arr.tobytes(), dtype=v1dtype)), timeout=60)
        want = {"probabilities": client.to_array(ref.probabilities),
                "logits": client.to_array(ref.logits),
                "labels": np.array(ref.labels, dtype=np.int64)}
        for raw in (False, True):
            resp = stub.ModelInfer(infer_request(pb, arr, dtype, raw, PREDICT_OUT), timeout=60)
            expect(resp.model_name == MODEL and resp.id == "req-1", "header: %s" % resp)
            expect(bool(len(resp.raw_output_contents)) == raw, "raw answered in kind")
            got = oip_outputs(resp)
            for name in PREDICT_OUT:
                same("%s %s raw=%s" % (name, dtype, raw), got[name], want[name])
        status, body = http.call("POST", "/v2/models/%s/infer" % MODEL,
                                 rest_body(arr.astype(np.float64), PREDICT_OUT,
                                           datatype=dtype))
        expect(status == 200, "REST infer: %s %s" % (status, body))
        got = rest_outputs(body)
        for name in PREDICT_OUT:
            same("REST %s %s" % (name, dtype), got[name], want[name])
    # No outputs asked: probabilities and labels.
    resp = stub.ModelInfer(infer_request(pb, q), timeout=60)
    expect([t.name for t in resp.outputs] == ["probabilities", "labels"],
           "default outputs: %s" % [t.name for t in resp.outputs])


def check_distribution(client, stub, pb, http, q):
    print("1b. ModelInfer (PredictDistribution outputs) == ntk.v1 PredictDistribution")
    params = {"method": "monte_carlo", "num_samples": 300, "seed": 11}
    want, _ = client.distribution(MODEL, q, method="MONTE_CARLO", num_samples=300, seed=11)
    resp = stub.ModelInfer(infer_request(pb, q, outputs=DIST_OUT, parameters=params), timeout=120)
    expect(resp.parameters["method"].string_param == "monte_carlo", "method: %s" % resp.parameters)
    got = oip_outputs(resp)
    for name in DIST_OUT:
        same("gRPC " + name, got[name], want[name])
    status, body = http.call("POST", "/v2/models/%s/infer" % MODEL,
                             rest_body(q, DIST_OUT, params))
    expect(status == 200, "REST distribution: %s %s" % (status, body))
    got = rest_outputs(body)
    for name in DIST_OUT:
        same("REST " + name, got[name], want[name])


def check_metadata(stub, pb, http):
    import grpc
    print("2. metadata, readiness, health, repository index")
    expect(stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live, "ServerLive")
    expect(stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready, "ServerReady")
    expect(stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=10).name == "ntk-serve",
           "ServerMetadata")
    expect(stub.ModelReady(pb.ModelReadyRequest(name=MODEL), timeout=10).ready, "ModelReady")
    expect(not stub.ModelReady(pb.ModelReadyRequest(name="nope"), timeout=10).ready,
           "ModelReady of an unknown model")
    md = stub.ModelMetadata(pb.ModelMetadataRequest(name=MODEL), timeout=10)
    expect(list(md.inputs[0].shape) == [-1, D] and md.inputs[0].name == "features",
           "inputs %s" % md.inputs)
    expect({o.name for o in md.outputs} == set(PREDICT_OUT + DIST_OUT), "outputs %s" % md.outputs)
    try:
        stub.ModelMetadata(pb.ModelMetadataRequest(name="nope"), timeout=10)
        fail("ModelMetadata of an unknown model succeeded")
    except grpc.RpcError as e:
        expect(e.code() == grpc.StatusCode.NOT_FOUND, "ModelMetadata: %s" % e.code())
    for path, key in (("/v2/health/live", "live"), ("/v2/health/ready", "ready")):
        status, body = http.call("GET", path)
        expect(status == 200 and body[key] is True, "%s: %s %s" % (path, status, body))
    status, body = http.call("GET", "/v2/models/" + MODEL)
    expect(status == 200 and body["inputs"][0]["shape"] == [-1, D], "REST metadata %s" % body)
    expect(http.call("GET", "/v2/models/%s/versions/1" % MODEL)[0] == 200, "version 1")
    expect(http.call("GET", "/v2/models/%s/ready" % MODEL)[0] == 200, "REST ready")
    status, body = http.call("GET", "/v2/models/nope/ready")
    expect(status == 404 and "error" in body, "REST ready of unknown: %s %s" % (status, body))
    status, body = http.call("POST", "/v2/repository/index", {})
    expect(status == 200 and [m["name"] for m in body] == [MODEL], "index %s" % body)
    status, body = http.call("GET", "/v2")
    expect(status == 200 and body["name"] == "ntk-serve", "/v2 %s" % body)


def check_bad_input(stub, pb, http, q):
    import grpc
    import numpy as np
    print("3. bad input")
    INV, NF = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
    base = lambda **kw: infer_request(pb, q, **kw)  # noqa: E731

    def mutate(fn, **kw):
        r = base(**kw)
        fn(r)
        return r
    grpc_cases = [
        ("BYTES", mutate(lambda r: setattr(r.inputs[0], "datatype", "BYTES")), INV,
         "inputs[0].datatype"),
        ("INT8", mutate(lambda r: setattr(r.inputs[0], "datatype", "INT8")), INV,
         "inputs[0].datatype"),
        ("1-D shape", mutate(lambda r: r.inputs[0].shape.pop()), INV, "inputs[0].shape"),
        ("shape vs contents", mutate(lambda r: r.inputs[0].contents.fp64_contents.pop()), INV,
         "inputs[0].contents.fp64_contents"),
        ("typed and raw", mutate(lambda r: r.raw_input_contents.append(b"\0" * 8 * M * D)), INV,
         "raw_input_contents"),
        ("raw size", mutate(lambda r: r.raw_input_contents.__setitem__(0, b"\0" * 8), raw=True),
         INV, "raw_input_contents[0]"),
        ("input name", mutate(lambda r: setattr(r.inputs[0], "name", "x")), INV,
         "inputs[0].name"),
        ("unknown output", base(outputs=["probabilities", "bogus"]), INV, "outputs[1].name"),
        ("unknown parameter", base(outputs=DIST_OUT, parameters={"foo": 1}), INV,
         "parameters.foo"),
        ("method on Predict", base(parameters={"method": "exact"}), INV, "parameters.method"),
        ("unknown method", base(outputs=DIST_OUT, parameters={"method": "magic"}), INV,
         "parameters.method"),
        ("columns vs model", infer_request(pb, np.zeros((M, D + 1))), INV, "features"),
        ("unknown model", base(model="nope"), NF, "model_name"),
        ("unknown version", mutate(lambda r: setattr(r, "model_version", "2")), NF,
         "model_version"),
    ]
    for name, req, code, field in grpc_cases:
        try:
            stub.ModelInfer(req, timeout=30)
            fail("gRPC %s: accepted" % name)
        except grpc.RpcError as e:
            expect(e.code() == code and field in e.details(),
                   "gRPC %s: %s %r (want %s naming %s)" % (name, e.code(), e.details(), code,
                                                           field))
    body = rest_body(q)
    rest_cases = [
        ("BYTES", dict(body, inputs=[dict(body["inputs"][0], datatype="BYTES")]), 400,
         "inputs[0].datatype"),
        ("INT8", dict(body, inputs=[dict(body["inputs"][0], datatype="INT8")]), 400,
         "inputs[0].datatype"),
        ("shape", dict(body, inputs=[dict(body["inputs"][0], shape=[M, D + 1])]), 400,
         "inputs[0].contents.fp64_contents"),
        ("non-number", dict(body, inputs=[dict(body["inputs"][0], data=["a"])]), 400,
         "inputs[0].data[0]"),
        ("unknown output", dict(body, outputs=[{"name": "bogus"}]), 400, "outputs[0].name"),
        ("unknown parameter", dict(body, parameters={"foo": 1}), 400, "parameters.foo"),
        ("unknown field", dict(body, extra=1), 400, "extra"),
        ("not JSON", b"{", 400, "body"),
    ]
    for name, b, status_want, field in rest_cases:
        status, got = http.call("POST", "/v2/models/%s/infer" % MODEL, b)
        expect(status == status_want and field in got.get("error", ""),
               "REST %s: %s %s (want %s naming %s)" % (name, status, got, status_want, field))
    status, got = http.call("POST", "/v2/models/nope/infer", body)
    expect(status == 404 and "model_name" in got["error"], "REST unknown model %s" % got)


def parse_metrics(text):
    """{(name, frozenset(labels)): value}."""
    out = {}
    for line in text.splitlines():
        m = re.match(r'^(\w+)(?:\{([^}]*)\})? (\S+)$', line)
        if not m:
            continue
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def metric(ms, name, **labels):
    return ms.get((name, frozenset(labels.items())), 0.0)


def check_metrics(client, stub, pb, http, q):
    print("4. /metrics counts the calls sent")
    status, text = http.call("GET", "/metrics")
    expect(status == 200 and "ntk_requests_total" in text, "metrics: %s" % status)
    before = parse_metrics(text)
    for _ in range(3):
        stub.ModelInfer(infer_request(pb, q), timeout=60)
    for _ in range(2):
        client.predict(MODEL, q)
        http.call("POST", "/v2/models/%s/infer" % MODEL, rest_body(q))
    try:
        stub.ModelInfer(infer_request(pb, q, outputs=["bogus"]), timeout=60)
    except Exception:  # noqa: BLE001 -- the INVALID_ARGUMENT is counted below
        pass
    after = parse_metrics(http.call("GET", "/metrics")[1])

    def delta(name, **labels):
        return metric(after, name, **labels) - metric(before, name, **labels)
    for (rpc, code, n) in (("ModelInfer", "OK", 3), ("ModelInfer", "INVALID_ARGUMENT", 1),
                           ("Predict", "OK", 2), ("http.ModelInfer", "OK", 2)):
        got = delta("ntk_requests_total", rpc=rpc, code=code)
        expect(got == n, "ntk_requests_total{rpc=%s,code=%s}: +%g, sent %d" % (rpc, code, got, n))
    expect(delta("ntk_request_duration_seconds_count", rpc="ModelInfer") == 4,
           "ModelInfer latency count")
    expect(delta("ntk_rows_processed_total", rpc="ModelInfer") == 3 * M, "rows processed")
    expect(delta("ntk_request_rows_count", rpc="Predict") == 2, "Predict batch sizes")
    expect(metric(after, "ntk_models_loaded") == 1, "models loaded")
    expect(metric(after, "ntk_model_bytes") > 0, "model bytes")
    expect(metric(after, "ntk_fits_in_flight") == 0, "fits in flight")
    # Fit (one, before this check) counted once with its duration.
    expect(metric(after, "ntk_fit_duration_seconds_count") == 1, "fit duration count")
    for name in ("ntk_distribution_cache_bytes", "ntk_queue_wait_seconds_count"):
        expect(any(k[0] == name for k in after), "%s missing" % name)


def check_auth_and_port(binary, pb, pb_grpc, taken_http):
    import grpc
    import bench_client
    print("5. bearer token over HTTP and OIP gRPC; a taken --http_listen port")
    with tempfile.TemporaryDirectory() as d:
        token_file = os.path.join(d, "token")
        with open(token_file, "w") as f:
            f.write("s3cret\n")
        with bench_client.Server(binary, ["--http_listen=127.0.0.1:0",
                                          "--auth_token_file=" + token_file]) as server:
            http = Http(server.http_address)
            expect(http.call("GET", "/v2/health/live")[0] == 200, "live without a token")
            expect(http.call("GET", "/metrics")[0] == 401, "/metrics without a token")
            status, body = http.call("POST", "/v2/repository/index", {})
            expect(status == 401 and "authorization" in body["error"], "index: %s" % body)
            expect(http.call("POST", "/v2/repository/index", {}, auth="bearer s3cret")[0] == 200,
                   "lower-case scheme")
            expect(http.call("POST", "/v2/repository/index", {}, auth="Bearer wrong")[0] == 401,
                   "wrong token")
            channel = grpc.insecure_channel(server.address)
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            expect(stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live, "ServerLive")
            try:
                stub.ModelMetadata(pb.ModelMetadataRequest(name="m"), timeout=10)
                fail("ModelMetadata without a token succeeded")
            except grpc.RpcError as e:
                expect(e.code() == grpc.StatusCode.UNAUTHENTICATED, "no token: %s" % e.code())
            try:
                stub.ModelMetadata(pb.ModelMetadataRequest(name="m"), timeout=10,
                                   metadata=[("authorization", "BEARER s3cret")])
                fail("ModelMetadata of a missing model succeeded")
            except grpc.RpcError as e:
                expect(e.code() == grpc.StatusCode.NOT_FOUND, "with token: %s" % e.code())
            channel.close()
        r = subprocess.run([binary, "--listen=127.0.0.1:0", "--model_dir=" + d + "/m2",
                            "--http_listen=" + taken_http], capture_output=True, text=True,
                           timeout=60)
        expect(r.returncode != 0 and "--http_listen" in r.stderr,
               "second server on %s: rc %d, %s" % (taken_http, r.returncode, r.stderr))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: oip_test.py PATH_TO_NTK_SERVER")
    try:
        import grpc  # noqa: F401
        import numpy as np
        import grpc_tools  # noqa: F401
    except ImportError as e:
        print("SKIP: /usr/bin/python3 cannot import %s" % e.name)
        sys.exit(SKIP)
    sys.dont_write_bytecode = True
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    import bench_client
    with tempfile.TemporaryDirectory() as stubs_dir:
        pb, pb_grpc = load_oip_stubs(stubs_dir)
        stubs = bench_client.load_stubs()
        rng = np.random.default_rng(5)
        y = np.arange(N) % C
        x = rng.normal(size=(N, D)) + 3.0 * np.eye(C, D)[y]
        q = rng.normal(size=(M, D)) + 3.0 * np.eye(C, D)[np.arange(M) % C]
        with bench_client.Server(sys.argv[1], ["--http_listen=127.0.0.1:0"]) as server:
            client = bench_client.Client(server.address, stubs)
            client.fit(MODEL, x, y, client.spec(depth=2))
            stub = pb_grpc.GRPCInferenceServiceStub(client.channel)
            http = Http(server.http_address)
            check_predict(client, stub, pb, http, q)
            check_distribution(client, stub, pb, http, q)
            check_metadata(stub, pb, http)
            check_bad_input(stub, pb, http, q)
            check_metrics(client, stub, pb, http, q)
            check_auth_and_port(sys.argv[1], pb, pb_grpc, server.http_address)
            client.close()
    print("PASS")


if __name__ == "__main__":
    main()
