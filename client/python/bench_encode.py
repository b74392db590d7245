#!/usr/bin/python3
"""Client-side encode of a FitRequest, raw bytes vs repeated double (issue 13):

    /usr/bin/python3 client/python/bench_encode.py [--rows 10000] [--cols 784] [--reps 3]

Builds the bytes ntk_client.Client.fit sends (encode_fit_request: the
features' memory copied once into the serialized request), the same request
built as a FitRequest message with Matrix.data (tobytes, set, serialize:
three copies), and with `repeated double values` (what the example script
and a hand-written client do), and prints the best of --reps wall-clock
times and the ratio Client.fit / repeated double. Runs from the source
tree (generating the git-ignored stubs there first when they are missing,
gen_stubs.py); needs no server.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_stubs  # noqa: E402
if not os.path.exists(os.path.join(gen_stubs.STUBS, "ntk_pb2_grpc.py")):
    gen_stubs.write(gen_stubs.STUBS)
import numpy as np  # noqa: E402
from ntk_client import make_spec, pb, to_matrix  # noqa: E402
from ntk_client.client import encode_fit_request  # noqa: E402


def best(fn, reps):
    times, size = [], 0
    for _ in range(reps):
        t = time.perf_counter()
        size = len(fn())
        times.append(time.perf_counter() - t)
    return min(times), size


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10000)
    ap.add_argument("--cols", type=int, default=784)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    X = rng.random((a.rows, a.cols))
    y = rng.integers(0, 10, size=a.rows).astype(np.int32)
    spec = make_spec(depth=2)

    def raw():  # what Client.fit sends
        header = pb.FitRequest(model_id="m")
        header.spec.CopyFrom(spec)
        return encode_fit_request(header, X, y)

    def raw_message():  # the same bytes through a FitRequest message
        r = pb.FitRequest(model_id="m")
        r.spec.CopyFrom(spec)
        to_matrix(X, r.features)
        r.labels.extend(y.tolist())
        return r.SerializeToString()

    def values():
        r = pb.FitRequest(model_id="m")
        r.spec.CopyFrom(spec)
        r.features.rows, r.features.cols = X.shape
        r.features.values.extend(X.ravel().tolist())
        r.labels.extend(y.tolist())
        return r.SerializeToString()

    t_raw, n_raw = best(raw, a.reps)
    t_msg, n_msg = best(raw_message, a.reps)
    t_val, n_val = best(values, a.reps)
    print("FitRequest %d x %d float64, best of %d:" % (a.rows, a.cols, a.reps))
    print("  repeated double               %8.3f s  %6.1f MB" % (t_val, n_val / 1e6))
    print("  raw bytes via FitRequest      %8.3f s  %6.1f MB" % (t_msg, n_msg / 1e6))
    print("  raw bytes (Client.fit)        %8.3f s  %6.1f MB" % (t_raw, n_raw / 1e6))
    print("  ratio raw / repeated double: %.3f (target <= 0.1)" % (t_raw / t_val))


if __name__ == "__main__":
    main()
