"""``python -m dualclip.train.worker ARGUMENTS.json``: one process of a ``torchrun`` launch.

Written by :func:`dualclip.train.distributed.launch`; every process trains its share of
each batch, and rank 0 writes the checkpoints, the log and the model.
"""

import sys

from dualclip.io import read_json
from dualclip.train import run

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m dualclip.train.worker ARGUMENTS.json (written by dualclip.train.distributed.launch)")
    run(**read_json(sys.argv[1]))
