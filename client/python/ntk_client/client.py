"""ntk_client.Client: the ntk.v1 service from Python with NumPy arrays.

Matrices go on the wire as raw little-endian bytes (Matrix.data, FLOAT64 or
FLOAT32: ``ndarray.tobytes``), not as ``repeated double``, and come back as
NumPy arrays viewing the answer's bytes. A fit whose request would not fit
in one message goes as FitStream in chunks of rows. See
client/python/README.md and docs/api.md.
"""
import numpy as np

import grpc

from ._stubs import ntk_pb2 as pb
from ._stubs import ntk_pb2_grpc as pb_grpc

__all__ = ["Client", "NtkError", "make_spec", "pb"]

_ACTIVATIONS = {"relu": pb.RELU, "erf": pb.ERF}
_LOSSES = {"cross_entropy": pb.CROSS_ENTROPY, "squared": pb.SQUARED}
_METHODS = {None: pb.METHOD_UNSPECIFIED, "exact": pb.EXACT, "linearized": pb.LINEARIZED,
            "monte_carlo": pb.MONTE_CARLO, "laplace_posterior": pb.LAPLACE_POSTERIOR}
_DTYPES = {np.dtype(np.float64): pb.FLOAT64, np.dtype(np.float32): pb.FLOAT32}


class NtkError(Exception):
    """A call failed: ``code`` is the grpc.StatusCode, ``details`` the
    server's message (it names the field, e.g. "features.cols: ...")."""

    def __init__(self, code, details):
        super().__init__("%s: %s" % (code.name, details))
        self.code = code
        self.details = details


def make_spec(activation="relu", depth=1, weight_variance=2.0, bias_variance=0.0,
              loss="cross_entropy", regularization=None, label_smoothing=None,
              standardize=False, normalize_rows=False, num_classes=0, class_names=()):
    """An ntk.v1.ModelSpec from keyword arguments (docs/api.md "ModelSpec");
    regularization / label_smoothing None: the server's default."""
    spec = pb.ModelSpec()
    spec.kernel.activation = _ACTIVATIONS[activation]
    spec.kernel.depth = depth
    spec.kernel.weight_variance = weight_variance
    spec.kernel.bias_variance = bias_variance
    spec.training.loss = _LOSSES[loss]
    if regularization is not None:
        spec.training.regularization = regularization
    if label_smoothing is not None:
        spec.training.label_smoothing = label_smoothing
    spec.preprocessing.standardize = standardize
    spec.preprocessing.normalize_rows = normalize_rows
    spec.num_classes = num_classes
    spec.class_names.extend(class_names)
    return spec


def to_matrix(x, out=None):
    """A 2-D array as an ntk.v1.Matrix with raw bytes: FLOAT32 for float32
    arrays, FLOAT64 for everything else (converted), row-major little-endian."""
    x = np.asarray(x)
    if x.ndim == 1:
        x = x.reshape(1, -1)
    if x.ndim != 2:
        raise ValueError("expected a 2-D array, got shape %s" % (x.shape,))
    dt = np.dtype("<f4") if x.dtype == np.float32 else np.dtype("<f8")
    x = np.ascontiguousarray(x, dtype=dt)
    m = out if out is not None else pb.Matrix()
    m.rows, m.cols = x.shape
    m.dtype = _DTYPES[np.dtype(dt.type)]
    m.data = x.tobytes()
    return m


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _len_field(number, payload_len):
    """The tag and length of a length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(payload_len)


def _matrix_parts(number, x):
    """Field `number` of a message holding `x` as a Matrix with raw data, as
    a list of byte strings and buffers to concatenate: the array's memory is
    referenced, not copied (b"".join makes the only copy). Same wire bytes
    as to_matrix(x).SerializeToString() inside that field."""
    x = np.asarray(x)
    dt = np.dtype("<f4") if x.dtype == np.float32 else np.dtype("<f8")
    x = np.ascontiguousarray(x, dtype=dt)
    head = pb.Matrix(rows=x.shape[0], cols=x.shape[1]).SerializeToString()
    dtype = pb.Matrix(dtype=_DTYPES[np.dtype(dt.type)]).SerializeToString()
    raw = memoryview(x).cast("B")
    data_head = _len_field(4, raw.nbytes) if raw.nbytes else b""
    size = len(head) + len(data_head) + raw.nbytes + len(dtype)
    return [_len_field(number, size), head, data_head, raw, dtype]


def encode_fit_request(header, X, labels=None, targets=None):
    """A serialized FitRequest: `header` (model_id, spec, replace,
    background) followed by features, labels and targets. Protobuf allows
    fields in any order, so this parses as the message with those fields
    set (FitRequest.FromString), while the features' bytes are copied once
    instead of three times (tobytes, into the message, serializing)."""
    parts = [header.SerializeToString()] + _matrix_parts(3, X)
    if labels is not None and len(labels):
        parts.append(pb.FitRequest(labels=labels.tolist()).SerializeToString())
    if targets is not None:
        parts += _matrix_parts(5, targets)
    return b"".join(parts)


def from_matrix(m):
    """An ntk.v1.Matrix as a (rows, cols) float64 array (a read-only view of
    the message's bytes when it carries FLOAT64 data)."""
    if m.data:
        dt = "<f4" if m.dtype == pb.FLOAT32 else "<f8"
        a = np.frombuffer(m.data, dtype=dt).reshape(m.rows, m.cols)
        return a.astype(np.float64) if dt == "<f4" else a
    return np.asarray(m.values, dtype=np.float64).reshape(m.rows, m.cols)


class Client:
    """A connection to an ntk_server.

    address: "host:port". token: the bearer token (--auth_token_file) or
    None. tls: None (plaintext), True (TLS with the system's roots), or the
    PEM bytes/str of the root certificate to trust. max_message_mb: the
    server's --max_message_mb (default 64): requests larger than 3/4 of it go
    as FitStream chunks. Answers are never refused for size: the receive
    limit is off, and the server itself keeps answers within its limit.
    timeout: seconds per call (None: no deadline).
    """

    def __init__(self, address, token=None, tls=None, max_message_mb=64, timeout=600.0):
        self.max_message_bytes = int(max_message_mb) << 20
        options = [("grpc.max_receive_message_length", -1),
                   ("grpc.max_send_message_length", self.max_message_bytes)]
        if tls is None or tls is False:
            self._channel = grpc.insecure_channel(address, options=options)
        else:
            roots = None if tls is True else (tls.encode() if isinstance(tls, str) else tls)
            self._channel = grpc.secure_channel(
                address, grpc.ssl_channel_credentials(root_certificates=roots), options=options)
        self._stub = pb_grpc.NtkServiceStub(self._channel)
        # Fit and FitStream with requests serialized by encode_fit_request.
        self._fit_raw = self._channel.unary_unary(
            "/ntk.v1.NtkService/Fit", request_serializer=None,
            response_deserializer=pb.FitResponse.FromString)
        self._fit_stream_raw = self._channel.stream_unary(
            "/ntk.v1.NtkService/FitStream", request_serializer=None,
            response_deserializer=pb.FitResponse.FromString)
        self._metadata = (("authorization", "Bearer " + token),) if token else None
        self.timeout = timeout

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise NtkError(e.code(), e.details()) from None

    # ---- fit ----

    def fit(self, X, y=None, model_id="", spec=None, *, targets=None, replace=False,
            background=False, chunk_rows=None, selection=None, **spec_args):
        """Fits a model; returns its ntk.v1.ModelInfo.

        X: (N, d) features (float32 arrays go as FLOAT32, others as
        FLOAT64). y: N integer labels, or targets: (N, C) soft targets.
        spec: an ntk.v1.ModelSpec, or keyword arguments of make_spec.
        background: return at once with state FITTING (then watch()).
        chunk_rows: rows per FitStream message; None: one Fit call when the
        request is under 3/4 of max_message_mb, else chunks of about 1/4 of it.
        selection: an ntk.v1.ModelSelection (docs/api.md "Model selection"):
        the server chooses the spec by cross-validation over its grid; the
        answer's .selection reports every candidate.
        """
        if spec is None:
            spec = make_spec(**spec_args)
        elif spec_args:
            raise TypeError("give spec or spec keyword arguments, not both")
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError("X: expected a 2-D array, got shape %s" % (X.shape,))
        n = X.shape[0]
        labels = None if y is None else np.asarray(y, dtype=np.int32).reshape(-1)
        T = None if targets is None else np.asarray(targets)
        header = pb.FitRequest(model_id=model_id, replace=replace, background=background)
        header.spec.CopyFrom(spec)
        if selection is not None:
            header.selection.CopyFrom(selection)
        row_bytes = X.shape[1] * X.dtype.itemsize + 4 + (0 if T is None else T.shape[1] * 8)
        if chunk_rows is None and n * row_bytes + 4096 <= self.max_message_bytes * 3 // 4:
            return self._call(self._fit_raw, encode_fit_request(header, X, labels, T)).model
        if chunk_rows is None:
            chunk_rows = max(1, (self.max_message_bytes // 4) // max(1, row_bytes))

        def messages():
            for begin in range(0, max(n, 1), chunk_rows):
                end = min(n, begin + chunk_rows)
                yield encode_fit_request(header if begin == 0 else pb.FitRequest(), X[begin:end],
                                         None if labels is None else labels[begin:end],
                                         None if T is None else T[begin:end])

        return self._call(self._fit_stream_raw, messages()).model

    # ---- predictions ----

    def predict(self, model_id, X):
        """Returns {"probabilities": (M, C), "labels": (M,), "logits": (M, C)}."""
        req = pb.PredictRequest(model_id=model_id)
        to_matrix(X, req.features)
        r = self._call(self._stub.Predict, req)
        return {"probabilities": from_matrix(r.probabilities),
                "labels": np.asarray(r.labels, dtype=np.int64),
                "logits": from_matrix(r.logits)}

    def predict_distribution(self, model_id, X, method=None, num_samples=0, seed=0):
        """PredictDistribution answered columnar (docs/api.md "Columnar
        answers"). method: None (the server's default), "exact",
        "linearized", "monte_carlo" or "laplace_posterior". Returns a dict
        of arrays: logit_mean and probability_mean (M, C), logit_covariance
        and probability_covariance (M, C, C), predictive_entropy,
        expected_entropy, mutual_information and labels (M,), and "method",
        the method used (a name as above)."""
        req = pb.PredictDistributionRequest(model_id=model_id, method=_METHODS[method],
                                            num_samples=num_samples, seed=seed, columnar=True)
        to_matrix(X, req.features)
        r = self._call(self._stub.PredictDistribution, req)
        b = r.batch
        lm, pm = from_matrix(b.logit_mean), from_matrix(b.probability_mean)
        m, c = lm.shape
        ent = from_matrix(b.entropies)
        names = {v: k for k, v in _METHODS.items() if k is not None}
        return {"logit_mean": lm,
                "logit_covariance": from_matrix(b.logit_covariance).reshape(m, c, c),
                "probability_mean": pm,
                "probability_covariance": from_matrix(b.probability_covariance).reshape(m, c, c),
                "predictive_entropy": ent[:, 0],
                "expected_entropy": ent[:, 1],
                "mutual_information": ent[:, 2],
                "labels": np.asarray(b.labels, dtype=np.int64),
                "method": names.get(r.method, str(r.method))}

    # ---- models ----

    def get(self, model_id):
        """The model's ntk.v1.ModelInfo (state READY, FITTING or FAILED)."""
        return self._call(self._stub.GetModel, pb.GetModelRequest(model_id=model_id))

    def models(self):
        """Every model (and fit in progress), ordered by id."""
        return list(self._call(self._stub.ListModels, pb.ListModelsRequest()).models)

    def delete(self, model_id):
        """Deletes the model; a FITTING one has its fit cancelled."""
        self._call(self._stub.DeleteModel, pb.DeleteModelRequest(model_id=model_id))

    def watch(self, model_id):
        """Yields the model's ModelInfo at once and on every progress change
        until it is READY or FAILED (WatchModel)."""
        try:
            for info in self._stub.WatchModel(pb.GetModelRequest(model_id=model_id),
                                              timeout=self.timeout, metadata=self._metadata):
                yield info
        except grpc.RpcError as e:
            raise NtkError(e.code(), e.details()) from None

    def wait(self, model_id, on_progress=None):
        """Watches until the model is READY (returns its ModelInfo) or FAILED
        (raises NtkError with code FAILED_PRECONDITION and the fit's error).
        on_progress(info) is called with every update."""
        last = None
        for last in self.watch(model_id):
            if on_progress is not None:
                on_progress(last)
        if last is None or last.state != pb.READY:
            raise NtkError(grpc.StatusCode.FAILED_PRECONDITION,
                           "model_id: fit of \"%s\" FAILED: %s" %
                           (model_id, last.error if last is not None else "no answer"))
        return last
