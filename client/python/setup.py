"""Installs ntk_client offline: `pip install ./client/python`.

No pyproject.toml on purpose: with one, pip would build in an isolated
environment and download setuptools from PyPI. Without it, pip uses the
setuptools and wheel already installed (Debian's python3-setuptools and
python3-wheel; a venv made with --system-site-packages sees them). The
runtime dependencies are Debian's python3-grpcio, python3-protobuf and
python3-numpy (they must be importable; pip finds them installed and
downloads nothing). The gRPC stubs are generated into the build from
../../proto/ntk/v1/ntk.proto (gen_stubs.py: protoc and grpc_python_plugin),
so pip must build from inside the checkout (pip builds local directories in
place).
"""
import os
import sys

from setuptools import setup
from setuptools.command.build_py import build_py

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_stubs  # noqa: E402


class BuildPyWithStubs(build_py):
    """build_py, then the generated stubs into the built ntk_client/_stubs."""

    def run(self):
        super().run()
        gen_stubs.write(os.path.join(self.build_lib, "ntk_client", "_stubs"))


setup(
    name="ntk-client",
    version="0.2.0",
    description="Python client of ntk-serve (NTK classifiers over gRPC)",
    packages=["ntk_client", "ntk_client._stubs"],
    python_requires=">=3.9",
    install_requires=["grpcio", "protobuf", "numpy"],
    cmdclass={"build_py": BuildPyWithStubs},
)
