"""Python client of ntk-serve (ntk.v1 over gRPC, NumPy arrays as raw bytes).

    from ntk_client import Client
    c = Client("127.0.0.1:50051")
    c.fit(X, y, "digits", depth=2, normalize_rows=True)
    d = c.predict_distribution("digits", X_test)   # dict of numpy arrays

See client/python/README.md.
"""
from .client import Client, NtkError, from_matrix, make_spec, pb, to_matrix

__all__ = ["Client", "NtkError", "make_spec", "to_matrix", "from_matrix", "pb"]
__version__ = "0.2.0"
