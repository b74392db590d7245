"""Installs ntk_client offline: `pip install ./client/python`.

No pyproject.toml on purpose: with one, pip would build in an isolated
environment and download setuptools from PyPI. Without it, pip uses the
setuptools and wheel already installed (Debian's python3-setuptools and
python3-wheel; a venv made with --system-site-packages sees them). The
runtime dependencies are Debian's python3-grpcio, python3-protobuf and
python3-numpy (they must be importable; pip finds them installed and
downloads nothing). The gRPC stubs are committed (gen_stubs.py).
"""
from setuptools import setup

setup(
    name="ntk-client",
    version="0.2.0",
    description="Python client of ntk-serve (NTK classifiers over gRPC)",
    packages=["ntk_client", "ntk_client._stubs"],
    python_requires=">=3.9",
    install_requires=["grpcio", "protobuf", "numpy"],
)
