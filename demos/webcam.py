"""Live pose tracking from the default webcam: a window with skeletons and ids (q or Esc quits).

    python demos/webcam.py [--source webcam:1] [--det-interval 3]
"""

import sys

from engines.errors import run_cli
from tracker.app import main

if __name__ == "__main__":
    # any extra options are passed through; --source given later overrides the webcam default
    args = sys.argv[1:]
    if "--source" not in args:
        args = ["--source", "webcam"] + args
    sys.exit(run_cli(main, ["--show", "--no-save"] + args, prog="webcam"))
