"""Time backprop_rs against numpy, PyTorch and scikit-learn.

A thin wrapper around ``backprop_rs._bench`` (also ``backprop-rs bench``);
run with ``--help`` for the options and the methodology.
"""

import sys

from backprop_rs._bench import run

if __name__ == "__main__":
    raise SystemExit(run(sys.argv[1:]))
