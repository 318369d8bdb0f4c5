"""Turn one video into PoseTrack 2018 JSON (and an annotated copy) in a numbered run folder.

    python demos/video_to_posetrack.py VIDEO [--out runs/track]
"""

import argparse
import sys

from engines.errors import run_cli
from tracker.app import main


def convert(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("video")
    p.add_argument("--out", default="runs/track")
    args = p.parse_args(argv)
    return main(["--source", args.video, "--export", "posetrack", "--out", args.out])


if __name__ == "__main__":
    sys.exit(run_cli(convert, prog="video_to_posetrack"))
