#!/usr/bin/env python3
"""Fits the digits data set through ntk-serve and lists the test points the
model is least sure about (largest mutual information: epistemic uncertainty).

    /usr/bin/python3 examples/python/digits_client.py --server=127.0.0.1:50051

Fits a model on the first 1500 rows of scikit-learn's bundled digits CSV
(64 pixel features, then the label), asks PredictDistribution for the
remaining 297 rows, prints the accuracy and the 5 test points with the
largest mutual information together with their class probabilities, and
deletes the model again (unless --keep).

The stubs are generated from proto/ntk/v1/ntk.proto by gen_stubs.py into
--stubs (default examples/python/gen) when they are not there yet. Needs
Debian's python3-grpcio, python3-protobuf and python3-numpy.
"""
import argparse
import gzip
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DIGITS = "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"


def load_stubs(stubs_dir):
    if not os.path.exists(os.path.join(stubs_dir, "proto", "ntk", "v1", "ntk_pb2.py")):
        sys.path.insert(0, HERE)
        import gen_stubs
        gen_stubs.generate(stubs_dir)
    sys.path.insert(0, stubs_dir)
    from proto.ntk.v1 import ntk_pb2, ntk_pb2_grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    return ntk_pb2, ntk_pb2_grpc, health_pb2, health_pb2_grpc


def load_digits(path):
    """Rows of (64 floats, int label) from the CSV (plain or gzip)."""
    opener = gzip.open if path.endswith(".gz") else open
    features, labels = [], []
    with opener(path, "rt") as f:
        for line_no, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            cells = line.split(",")
            if len(cells) != 65:
                sys.exit("%s:%d: expected 65 columns, got %d" % (path, line_no, len(cells)))
            features.append([float(c) for c in cells[:64]])
            labels.append(int(float(cells[64])))
    return features, labels


def matrix(pb, rows):
    m = pb.Matrix(rows=len(rows), cols=len(rows[0]) if rows else 0)
    for r in rows:
        m.values.extend(r)
    return m


def wait_serving(grpc, health_pb2, health_pb2_grpc, channel, metadata, seconds):
    stub = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + seconds
    while True:
        try:
            r = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2,
                           metadata=metadata)
            if r.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError as e:
            if time.monotonic() > deadline:
                sys.exit("server %s not serving: %s" % (channel, e))
        if time.monotonic() > deadline:
            sys.exit("server not serving after %.0f s" % seconds)
        time.sleep(0.2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", default=os.environ.get("NTK_SERVER", "127.0.0.1:50051"))
    ap.add_argument("--stubs", default=os.path.join(HERE, "gen"),
                    help="directory of the generated stubs (generated if missing)")
    ap.add_argument("--data", default=DIGITS, help="digits CSV (64 features, label)")
    ap.add_argument("--train_rows", type=int, default=1500)
    ap.add_argument("--model_id", default="digits-example")
    ap.add_argument("--top", type=int, default=5)
    ap.add_argument("--token_file", default="", help="bearer token file, if the server wants one")
    ap.add_argument("--keep", action="store_true", help="keep the model on the server")
    args = ap.parse_args()

    import grpc
    ntk_pb2, ntk_pb2_grpc, health_pb2, health_pb2_grpc = load_stubs(args.stubs)

    features, labels = load_digits(args.data)
    n = args.train_rows
    if not 0 < n < len(features):
        sys.exit("--train_rows must be in (0, %d)" % len(features))
    x_train, y_train = features[:n], labels[:n]
    x_test, y_test = features[n:], labels[n:]

    metadata = []
    if args.token_file:
        with open(args.token_file) as f:
            metadata = [("authorization", "Bearer " + f.read().strip())]
    options = [("grpc.max_send_message_length", 64 << 20),
               ("grpc.max_receive_message_length", 64 << 20)]
    channel = grpc.insecure_channel(args.server, options=options)
    wait_serving(grpc, health_pb2, health_pb2_grpc, channel, metadata, 10)
    stub = ntk_pb2_grpc.NtkServiceStub(channel)

    # One hidden ReLU layer; rows scaled to norm sqrt(d) (the kernel's
    # natural scale). Loss and regularization: the server's defaults
    # (cross-entropy with label smoothing 0.1, lambda = 0).
    spec = ntk_pb2.ModelSpec(
        kernel=ntk_pb2.KernelSpec(activation=ntk_pb2.RELU, depth=1),
        preprocessing=ntk_pb2.Preprocessing(normalize_rows=True),
        class_names=[str(k) for k in range(10)])
    t0 = time.monotonic()
    fit = stub.Fit(ntk_pb2.FitRequest(model_id=args.model_id, spec=spec,
                                      features=matrix(ntk_pb2, x_train),
                                      labels=y_train, replace=True),
                   timeout=600, metadata=metadata)
    info = fit.model
    print("fitted %s: %d rows x %d features, %d classes, regime %s, "
          "train accuracy %.4f (%.2f s)" % (
              info.model_id, info.num_train, info.num_features,
              info.spec.num_classes, info.stats.regime or "?",
              info.stats.train_accuracy, time.monotonic() - t0))

    dist = stub.PredictDistribution(
        ntk_pb2.PredictDistributionRequest(model_id=args.model_id,
                                           features=matrix(ntk_pb2, x_test)),
        timeout=600, metadata=metadata)
    method = ntk_pb2.DistributionMethod.Name(dist.method)
    points = list(dist.points)
    if len(points) != len(x_test):
        sys.exit("expected %d points, got %d" % (len(x_test), len(points)))
    correct = sum(p.label == y for p, y in zip(points, y_test))
    print("test accuracy %.4f (%d/%d), method %s" % (
        correct / len(points), correct, len(points), method))
    mean_mi = sum(p.mutual_information for p in points) / len(points)
    print("mean mutual information %.4g nats" % mean_mi)

    order = sorted(range(len(points)), key=lambda i: -points[i].mutual_information)
    print("the %d most uncertain test points (largest mutual information):" % args.top)
    print("%6s %5s %5s %9s %9s  %s" % ("row", "true", "pred", "MI", "H[E p]",
                                       "probabilities 0..9"))
    for i in order[:args.top]:
        p = points[i]
        probs = " ".join("%.3f" % v for v in p.probability_mean)
        if not all(math.isfinite(v) for v in p.probability_mean):
            sys.exit("non-finite probability at row %d" % (n + i))
        print("%6d %5d %5d %9.4g %9.4g  %s" % (n + i, y_test[i], p.label,
                                                p.mutual_information,
                                                p.predictive_entropy, probs))
    if not args.keep:
        stub.DeleteModel(ntk_pb2.DeleteModelRequest(model_id=args.model_id),
                         timeout=30, metadata=metadata)


if __name__ == "__main__":
    main()
