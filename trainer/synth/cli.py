"""`python -m trainer synth images|videos|demo|bench ...`: synthetic people with exact ground truth."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from engines.errors import UserError

from .motion import MOTIONS

VIDEO_MOTIONS = tuple(m for m in MOTIONS if m != "pose")
DEMO = dict(seed=7, width=640, height=360, people=(6, 6), frames=250, fps=25.0, occlusion=0.6, noise=2.0,
            blur=0.0, shake=2.0, soften=0.8, quality=80, depth=(2.4, 4.2), motions=("walk", "run", "wave", "turn"))


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's usage error becomes our one-line UserError
        raise UserError(message)


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--size must look like 640x360, got {text!r}") from None
    if not (32 <= w <= 4096 and 32 <= h <= 4096):
        raise UserError(f"--size {text}: width and height must be between 32 and 4096")
    return w, h


def parse_range(text: str, name: str, lo: float, hi: float, kind: type = int) -> tuple:
    """N or A-B as two numbers of `kind` (int or float) with lo <= A <= B <= hi."""
    try:
        parts = [kind(v) for v in text.split("-")] if not text.startswith("-") else None
    except ValueError:
        parts = None
    if not parts or len(parts) > 2:
        raise UserError(f"{name} must be N or A-B, got {text!r}")
    a, b = parts[0], parts[-1]
    if not (lo <= a <= b <= hi):
        raise UserError(f"{name} {text}: need {lo:g} <= A <= B <= {hi:g}")
    return a, b


def parse_motions(text: str, allowed: Sequence[str]) -> tuple[str, ...]:
    names = tuple(m.strip() for m in text.split(",") if m.strip())
    bad = [m for m in names if m not in allowed]
    if not names or bad:
        raise UserError(f"--motions: unknown {', '.join(bad) or 'empty list'}; choose from {', '.join(allowed)}")
    return names


def check_fraction(value: float, name: str) -> float:
    if not (0.0 <= value <= 1.0):
        raise UserError(f"{name} must be between 0 and 1, got {value}")
    return value


def check_positive(value: int, name: str, hi: int) -> int:
    if not (1 <= value <= hi):
        raise UserError(f"{name} must be between 1 and {hi}, got {value}")
    return value


def check_out_dir(path: str) -> Path:
    """Create the folder if needed and prove it is writable, before any work starts."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test."):
            pass
    except OSError as exc:
        raise UserError(f"--out {out} is not writable: {exc.strerror or exc}") from None
    return out


def _common(p: argparse.ArgumentParser, people: str) -> None:
    p.add_argument("--count", type=int, required=True, help="how many images / sequences")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", default="640x360", help="WxH")
    p.add_argument("--people", default=people, help="people per image/sequence, N or A-B (1-15)")
    p.add_argument("--occlusion", type=float, default=0.5, help="0..1, how often people overlap")
    p.add_argument("--noise", type=float, default=4.0, help="sensor noise sigma, 0..50 grey levels")
    p.add_argument("--blur", type=float, default=0.15, help="0..1, chance of motion blur")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality 30..100")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m trainer synth", description=__doc__)
    sub = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)
    img = sub.add_parser("images", help="still images + COCO keypoints annotations.json")
    _common(img, "1-6")
    img.add_argument("--motions", default=",".join(MOTIONS), help=f"comma list from {','.join(MOTIONS)}")
    img.add_argument("--heights", default="0.3-0.95", help="people's heights as fractions of the image height, A-B")
    vid = sub.add_parser("videos", help="MP4 + frames + PoseTrack 2018/2017 ground truth per sequence")
    _common(vid, "2-8")
    _video_knobs(vid)
    demo = sub.add_parser("demo", help="the tracker's bundled demo clip (demo.mp4 + demo_gt/demo.json)")
    demo.add_argument("--out", default=str(Path(__file__).resolve().parents[2] / "tracker" / "assets"))
    bench = sub.add_parser("bench", help="frames rendered and written per second on one core")
    bench.add_argument("--size", default="640x360")
    bench.add_argument("--people", default="4-6")
    bench.add_argument("--frames", type=int, default=50, help="frames per repeat")
    bench.add_argument("--repeats", type=int, default=5)
    bench.add_argument("--seed", type=int, default=0)
    return parser


def _video_knobs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--frames", type=int, default=100, help="frames per sequence")
    p.add_argument("--fps", type=float, default=25.0)
    p.add_argument("--split", default="train", choices=("train", "val", "test"))
    p.add_argument("--shake", type=float, default=4.0, help="camera motion amplitude in px, 0..50")
    p.add_argument("--motions", default=",".join(VIDEO_MOTIONS), help=f"comma list from {','.join(VIDEO_MOTIONS)}")
    p.add_argument("--away", default="0.3-2.5", help="seconds a walker who left the view stays away, A-B")
    p.add_argument("--occluders", type=int, default=0,
                   help="pillars in the foreground (0-5) that hide people walking behind them for seconds")
    p.add_argument("--no-images", action="store_true", help="write only the MP4 and the ground truth")


def _validate_common(a) -> dict:
    check_positive(a.count, "--count", 10_000_000)
    if a.seed < 0:
        raise UserError(f"--seed must be >= 0, got {a.seed}")
    if not (0 <= a.noise <= 50):
        raise UserError(f"--noise must be between 0 and 50, got {a.noise}")
    if not (30 <= a.quality <= 100):
        raise UserError(f"--quality must be between 30 and 100, got {a.quality}")
    w, h = parse_size(a.size)
    return {"width": w, "height": h, "people": parse_range(a.people, "--people", 1, 15),
            "occlusion": check_fraction(a.occlusion, "--occlusion"), "noise": a.noise,
            "blur": check_fraction(a.blur, "--blur")}


def run_images(a) -> int:
    from . import scene
    from .stills import StillKnobs, sample_still
    from .writers import CocoWriter, write_jpeg

    low, high = parse_range(a.heights, "--heights", 0.05, 1.5, float)
    knobs = StillKnobs(motions=parse_motions(a.motions, MOTIONS), min_height=low, max_height=high,
                       **_validate_common(a))
    out = check_out_dir(a.out)
    noise = scene.Noise(np.random.default_rng([a.seed, 1 << 30]), knobs.width, knobs.height, knobs.noise)
    coco = CocoWriter(out)
    digits = max(6, len(str(a.count)))
    for i in tqdm(range(a.count), desc="synth images", unit="img"):
        rng = np.random.default_rng([a.seed, i])
        frame, truth, _, _ = sample_still(rng, knobs, noise)
        name = f"images/{i:0{digits}d}.jpg"
        write_jpeg(out / name, frame, a.quality)
        coco.add(i + 1, name, knobs.width, knobs.height, truth)
    path = coco.close()
    print(f"wrote {a.count} images and {len(coco.annotations)} people to {path}")
    return 0


def _video_knobs_from(a):
    from .sequence import VideoKnobs

    common = _validate_common(a)
    check_positive(a.frames, "--frames", 100_000)
    if not (1 <= a.fps <= 240):
        raise UserError(f"--fps must be between 1 and 240, got {a.fps}")
    if not (0 <= a.shake <= 50):
        raise UserError(f"--shake must be between 0 and 50, got {a.shake}")
    if not (0 <= a.occluders <= 5):
        raise UserError(f"--occluders must be between 0 and 5, got {a.occluders}")
    return VideoKnobs(frames=a.frames, fps=a.fps, shake=a.shake, motions=parse_motions(a.motions, VIDEO_MOTIONS),
                      away=parse_range(a.away, "--away", 0, 600, float), occluders=a.occluders, **common)


def write_sequence(out: Path, seq_num: int, seq_name: str, split: str, knobs, seed: int, quality: int,
                   images: bool, video_path: Path, gt_path: Path, gt2017_path: Path | None, progress=None) -> int:
    """Render one sequence: MP4, optional JPEG frames, PoseTrack 2018 (and 2017) JSON. Returns #annotations."""
    from .sequence import frames
    from .writers import Mp4Writer, PoseTrackSequenceWriter, write_jpeg

    gt = PoseTrackSequenceWriter(seq_num, seq_name, split, knobs.frames, knobs.width, knobs.height)
    video = Mp4Writer(video_path, knobs.fps, knobs.width, knobs.height)
    try:
        for fr in frames(np.random.default_rng([seed, seq_num]), knobs):
            video.write(fr.image)
            if images:
                write_jpeg(out / gt.file_name(fr.index), fr.image, quality)
            gt.add(fr.index, fr.truth, fr.track_ids, fr.keep)
            if progress is not None:
                progress.update(1)
    except BaseException:
        video.abort()
        raise
    video.close()
    gt.write(gt_path, gt2017_path)
    return gt.num_annotations


def run_videos(a) -> int:
    knobs = _video_knobs_from(a)
    out = check_out_dir(a.out)
    people = 0
    with tqdm(total=a.count * knobs.frames, desc="synth videos", unit="frame") as bar:
        for i in range(a.count):
            num = i + 1
            name = f"{num:06d}_synth"
            people += write_sequence(out, num, name, a.split, knobs, a.seed, a.quality, not a.no_images,
                                     out / "videos" / f"{name}.mp4", out / "annotations" / a.split / f"{name}.json",
                                     out / "annotations_2017" / a.split / f"{name}.json", bar)
    print(f"wrote {a.count} sequences ({people} person-frames) to {out}")
    return 0


def demo_knobs():
    from .sequence import VideoKnobs

    return VideoKnobs(**{k: v for k, v in DEMO.items() if k not in ("seed", "quality")})


def run_demo(a) -> int:
    out = check_out_dir(a.out)
    knobs = demo_knobs()
    with tqdm(total=knobs.frames, desc="synth demo", unit="frame") as bar:
        n = write_sequence(out, 1, "demo", "val", knobs, DEMO["seed"], DEMO["quality"], False,
                           out / "demo.mp4", out / "demo_gt" / "demo.json", None, bar)
    print(f"wrote {out / 'demo.mp4'} and {out / 'demo_gt' / 'demo.json'} ({n} person-frames)")
    return 0


def run_bench(a) -> int:
    from .bench import bench

    w, h = parse_size(a.size)
    people = parse_range(a.people, "--people", 1, 15)
    check_positive(a.frames, "--frames", 100_000)
    check_positive(a.repeats, "--repeats", 1000)
    if a.seed < 0:
        raise UserError(f"--seed must be >= 0, got {a.seed}")
    result = bench(w, h, people, a.frames, a.repeats, a.seed)
    print(f"synth bench {w}x{h}, {people[0]}-{people[1]} people, 1 thread: "
          f"median {result['median_fps']:.1f} frames/s rendered+written "
          f"(render only {result['median_render_fps']:.1f}; repeats {', '.join(f'{v:.1f}' for v in result['fps'])})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return {"images": run_images, "videos": run_videos, "demo": run_demo, "bench": run_bench}[args.verb](args)
