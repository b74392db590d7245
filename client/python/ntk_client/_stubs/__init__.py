"""gRPC stubs of ntk.v1: ntk_pb2 and ntk_pb2_grpc are generated from
proto/ntk/v1/ntk.proto when the package is built (setup.py), not committed;
in the source tree run /usr/bin/python3 client/python/gen_stubs.py."""
