"""gRPC stubs of ntk.v1 (generated; see client/python/gen_stubs.py)."""
