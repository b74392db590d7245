#!/usr/bin/env python3
"""Runs digits_client.py with freshly generated stubs in a temporary
directory (nothing is written to the source tree). Arguments are passed on:

    /usr/bin/python3 examples/python/run_example.py --server=127.0.0.1:50051

Used by tests/python_example_test.cc.
"""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import gen_stubs  # noqa: E402


def main():
    with tempfile.TemporaryDirectory(prefix="ntk-stubs-") as out:
        gen_stubs.generate(out)
        rc = subprocess.call([sys.executable, "-B", os.path.join(HERE, "digits_client.py"),
                              "--stubs", out] + sys.argv[1:])
    sys.exit(rc)


if __name__ == "__main__":
    main()
