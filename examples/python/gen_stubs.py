#!/usr/bin/env python3
"""Generates the Python gRPC stubs of ntk-serve from proto/ntk/v1/ntk.proto.

    /usr/bin/python3 examples/python/gen_stubs.py [--out DIR]

Writes DIR/proto/ntk/v1/ntk_pb2.py and ntk_pb2_grpc.py (the service), and
DIR/grpc_health/v1/health_pb2.py and health_pb2_grpc.py (grpc.health.v1,
from /usr/share/grpc-proto; Debian's python3-grpcio has no grpc_health
module). The default DIR is examples/python/gen, which .gitignore excludes.

Uses protoc (protobuf-compiler) and /usr/bin/grpc_python_plugin
(protobuf-compiler-grpc); both come with ./ntk.sh deps.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
NTK_PROTO = "proto/ntk/v1/ntk.proto"
HEALTH_PROTO = "/usr/share/grpc-proto/grpc/health/v1/health.proto"
PLUGIN = "/usr/bin/grpc_python_plugin"


def protoc(include, out, proto):
    cmd = ["protoc", "-I", include, "--python_out=" + out, "--grpc_out=" + out,
           "--plugin=protoc-gen-grpc=" + PLUGIN, proto]
    subprocess.run(cmd, check=True)


def touch_packages(out, rel_dir):
    # Regular packages (with __init__.py), so that a top-level package named
    # "proto" elsewhere on sys.path cannot shadow ours.
    d = out
    for part in rel_dir.split("/"):
        d = os.path.join(d, part)
        init = os.path.join(d, "__init__.py")
        if not os.path.exists(init):
            open(init, "w").close()


def generate(out):
    """Generates the stubs into `out` (created if missing). Returns `out`."""
    for tool in ("protoc", PLUGIN):
        if shutil.which(tool) is None:
            sys.exit("gen_stubs: %s not found (apt-get install protobuf-compiler "
                     "protobuf-compiler-grpc)" % tool)
    os.makedirs(out, exist_ok=True)
    protoc(ROOT, out, os.path.join(ROOT, NTK_PROTO))
    touch_packages(out, "proto/ntk/v1")
    if os.path.exists(HEALTH_PROTO):
        # Compiled from a copy under grpc_health/ so that the module is
        # grpc_health.v1.health_pb2 (like the PyPI grpcio-health-checking)
        # and does not collide with the grpc package itself. The wire names
        # (grpc.health.v1.Health) come from the .proto's package and are
        # unchanged.
        with tempfile.TemporaryDirectory() as src:
            os.makedirs(os.path.join(src, "grpc_health", "v1"))
            shutil.copy(HEALTH_PROTO, os.path.join(src, "grpc_health", "v1"))
            protoc(src, out, os.path.join(src, "grpc_health", "v1", "health.proto"))
        touch_packages(out, "grpc_health/v1")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(HERE, "gen"),
                    help="output directory (default: examples/python/gen)")
    args = ap.parse_args()
    print(generate(args.out))


if __name__ == "__main__":
    main()
