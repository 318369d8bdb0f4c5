"""What `python -m tracker` leaves when things go wrong (issue 15): a full disk, an unwritable
output, a bad option, Ctrl+C at any moment, SIGKILL. Real processes, real signals, real
filesystems: a size-limited or read-only tmpfs where this machine lets us mount one."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.errors import WriteError, run_cli
from engines.formats.posetrack import load_sequence
from tracker.app import main
from tracker.export import JsonlWriter, PoseTrack18Writer
from tracker.export.journal import finish_journal
from tracker.export.video import ImageSink, VideoSink
from tracker.sources import DEMO_CLIP
from tracker.tracking import PoseTracker
from synthetic_people import noisy_detections, synthetic_people

REPO = Path(__file__).parents[1]
OFFLINE = ["--bundled"]   # the bundled models: no download


@pytest.fixture
def tmpfs(tmp_path):
    """mount(size, read_only=False) -> a fresh tmpfs folder; unmounted after the test."""
    mounted = []

    def mount(size: str, read_only: bool = False) -> Path:
        where = tmp_path / f"fs{len(mounted)}"
        where.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        try:
            done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                                  capture_output=True, text=True)
        except FileNotFoundError:
            pytest.skip("no mount command here")
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'needs root'})")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], check=False)


def tracker(*argv):
    return subprocess.run([sys.executable, "-m", "tracker", *argv], cwd=REPO, capture_output=True,
                          text=True, timeout=180, env={**os.environ, "OMP_NUM_THREADS": "1"})


def video_frames(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else -1
    capture.release()
    return frames


def tracked(num_frames: int):
    rng = np.random.default_rng(0)
    gt = synthetic_people(3, num_frames, rng)
    people = PoseTracker()
    return [people.update(*noisy_detections(gt[f], rng, 0.005), timestamp=f / 30) for f in range(num_frames)]


# --------------------------------------------------------------------------- full disk (item 3)

def test_full_disk_with_every_export_names_the_files_it_could_not_finish(tmpfs, short_clip):
    """No video to remove, so the disk stays full: the PoseTrack files cannot be written from
    their journals. The line names them, not the line file whose write failed first (which
    ends with its last whole frame)."""
    out = tmpfs("48k")
    run = tracker("--source", str(short_clip), *OFFLINE, "--out", str(out), "--no-save",
                  *[option for fmt in ("posetrack", "posetrack17", "jsonl", "csv", "mot") for option in ("--export", fmt)])
    assert run.returncode == 1, run.stderr
    errors = [line for line in run.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "Traceback" not in run.stderr, run.stderr
    folder = out / "exp1"
    unfinished = [name for name in ("short.json", "short.pt17.json") if not (folder / name).exists()]
    assert unfinished, "the disk was not full enough for this test"
    for name in unfinished:
        journal = f".{name.removesuffix('.json')}.partial.jsonl"
        assert f"cannot write {folder / name}: No space left on device (its frames stay in {journal})" in errors[0]
        assert (folder / journal).exists()
    assert not any(f"{folder / name}:" in errors[0] for name in ("short.jsonl", "short.csv", "short.mot.txt"))


@pytest.mark.slow
def test_full_disk_is_one_line_exit_1_and_keeps_whole_frames(tmpfs, short_clip):
    out = tmpfs("48k")
    run = tracker("--source", str(short_clip), *OFFLINE, "--out", str(out), "--export", "posetrack",
                  "--export", "jsonl")
    assert run.returncode == 1, run.stderr
    errors = [line for line in run.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "no space left on device" in errors[0].lower(), run.stderr
    assert "Traceback" not in run.stderr and "results saved" not in run.stdout
    folder = out / "exp1"
    # no unplayable video, at `short.mp4` or hidden
    assert not (folder / "short.mp4").exists() and not (folder / ".short.partial.mp4").exists()
    lines = (folder / "short.jsonl").read_text().splitlines()
    assert [json.loads(line)["frame"] for line in lines] == list(range(len(lines)))  # whole frames only
    if (folder / "short.json").exists():
        assert len(load_sequence(folder / "short.json").frames) >= len(lines)


def test_video_on_a_full_disk_is_an_error_not_a_broken_file(tmpfs):
    folder = tmpfs("64k")
    reader = cv2.VideoCapture(str(DEMO_CLIP))
    sink = VideoSink(folder / "clip.mp4", 25.0)
    for _ in range(20):       # ~200 KB of MP4: does not fit; OpenCV itself reports nothing
        sink.write(reader.read()[1])
    reader.release()
    with pytest.raises(WriteError, match="no space left on device"):
        sink.close()
    assert list(folder.iterdir()) == []   # neither clip.mp4 nor the partial file


def test_picture_on_a_full_disk_is_an_error_not_a_broken_file(tmpfs):
    folder = tmpfs("16k")
    sink = ImageSink(folder / "photo.jpg")
    image = cv2.VideoCapture(str(DEMO_CLIP)).read()[1]
    sink.write(np.random.default_rng(0).integers(0, 256, image.shape, np.uint8))   # ~600 KB as JPEG
    with pytest.raises(WriteError, match="photo.jpg: no space left on device"):
        sink.close()
    assert list(folder.iterdir()) == []   # neither photo.jpg nor its temporary file


def test_video_that_fits_is_checked_and_complete(tmp_path):
    reader = cv2.VideoCapture(str(DEMO_CLIP))
    sink = VideoSink(tmp_path / "clip.mp4", 25.0)
    for _ in range(7):
        sink.write(reader.read()[1])
    reader.release()
    sink.close()
    assert video_frames(tmp_path / "clip.mp4") == 7 and sorted(os.listdir(tmp_path)) == ["clip.mp4"]


def test_frames_of_another_size_are_fitted_into_the_video(tmp_path):
    """An image folder of mixed sizes (the COCO sample): every frame lands in the video."""
    reader = cv2.VideoCapture(str(DEMO_CLIP))
    first = reader.read()[1]
    reader.release()
    sink = VideoSink(tmp_path / "clip.mp4", 25.0)
    for image in (first, cv2.resize(first, (320, 320)), cv2.resize(first, (1280, 720))):
        sink.write(image)
    sink.close()
    video = cv2.VideoCapture(str(tmp_path / "clip.mp4"))
    frames = [video.read()[1] for _ in range(3)]
    video.release()
    assert video_frames(tmp_path / "clip.mp4") == 3 and all(f.shape == first.shape for f in frames)
    # the square frame sits between grey bars (140 px each side), the 16:9 one fills the frame
    assert np.abs(frames[1][:, :130].astype(int) - 114).mean() < 4
    assert np.abs(frames[2].astype(int) - first.astype(int)).mean() < 6


def test_jsonl_on_a_full_disk_raises_and_keeps_whole_frames(tmpfs):
    folder = tmpfs("16k")
    writer = JsonlWriter(folder / "t.jsonl")
    with pytest.raises(WriteError, match="t.jsonl: No space left on device"):
        for f, tracks in enumerate(tracked(200)):   # ~1 KB a frame: the disk fills part way
            writer.write(f, f / 30, tracks)
    writer.close()
    lines = (folder / "t.jsonl").read_text().splitlines()
    assert len(lines) == f and [json.loads(x)["frame"] for x in lines] == list(range(f))


def test_posetrack_on_a_full_disk_raises_and_keeps_its_journal(tmpfs, tmp_path):
    folder = tmpfs("16k")
    writer = PoseTrack18Writer(folder / "t.json")
    with pytest.raises(WriteError, match="t.json: No space left on device"):
        for f, tracks in enumerate(tracked(200)):
            writer.write(f, f / 30, tracks)
    with pytest.raises(WriteError):   # no room for the JSON either: the journal is kept
        writer.close()
    journal = folder / ".t.partial.jsonl"
    assert sorted(os.listdir(folder)) == [journal.name]
    # moved where there is room, it gives the file with every frame before the failing one
    (tmp_path / journal.name).write_bytes(journal.read_bytes())
    target, frames = finish_journal(tmp_path / journal.name)
    assert frames == f and len(load_sequence(target).frames) == f


# ------------------------------------------------------------------- unwritable output (item 6)

def _one_line_exit_2(argv, capsys, message):
    assert run_cli(main, argv, prog="tracker") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


@pytest.mark.parametrize("option", ["out-is-a-file", "out-under-a-file", "jsonl-is-a-folder", "jsonl-under-a-file"])
def test_unwritable_output_is_refused_before_any_work(tmp_path, capsys, option):
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "folder").mkdir()
    argv, message = {
        "out-is-a-file": (["--out", str(tmp_path / "notes.txt")], "is a file, not a folder"),
        "out-under-a-file": (["--out", str(tmp_path / "notes.txt" / "runs")], "is a file, not a folder"),
        "jsonl-is-a-folder": (["--jsonl", str(tmp_path / "folder")], "is a folder, not a file"),
        "jsonl-under-a-file": (["--jsonl", str(tmp_path / "notes.txt" / "t.jsonl")], "is a file, not a folder"),
    }[option]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    _one_line_exit_2(["--source", "missing.mp4", "--out", str(tmp_path / "runs"), *argv], capsys, message)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before   # nothing created


@pytest.mark.parametrize("option", ["--out", "--jsonl"])
def test_read_only_filesystem_is_refused_before_any_work(tmpfs, tmp_path, capsys, option):
    read_only = tmpfs("64k", read_only=True)
    target = read_only / ("runs" if option == "--out" else "t.jsonl")
    argv = ["--out", str(tmp_path / "runs")] + [option, str(target)]
    _one_line_exit_2(["--source", "missing.mp4", *argv], capsys, "Read-only file system")
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------- options checked first (item 9)

@pytest.mark.parametrize("argv, message", [
    (["--det-interval", "0"], "--det-interval: must be 1 or more, got 0"),
    (["--det-interval", "x"], "--det-interval: invalid positive_int value: 'x'"),
    (["--backend", "nosuch"], "--backend: invalid choice: 'nosuch'"),
    (["--export", "xml"], "--export: invalid choice: 'xml'"),
])
def test_bad_options_create_nothing(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    _one_line_exit_2(["--source", str(DEMO_CLIP), "--export", "csv", "--jsonl", "t.jsonl", *argv], capsys, message)
    assert list(tmp_path.iterdir()) == []


def test_batch_checks_its_options_and_output_first(tmp_path, capsys, short_clip):
    from tracker.batch import main as batch

    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "a.mp4").write_bytes(short_clip.read_bytes())
    (tmp_path / "notes.txt").write_text("x")
    for argv, message in [(["--out", str(tmp_path / "notes.txt")], "is a file, not a folder"),
                          (["--out", str(tmp_path / "out"), "--det-interval", "0"], "must be 1 or more")]:
        assert run_cli(batch, [str(videos), *argv], prog="tracker") == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "videos"]


# --------------------------------------------------------------------- Ctrl+C and SIGKILL (item 10)

def _start(out: Path, *extra):
    """`python -m tracker` on the demo clip played as an endless camera (so the run is still going
    whenever the test acts); returns once it has written 10 frames."""
    argv = ["--out", str(out), "--loop", *OFFLINE, "--export", "posetrack", "--export", "jsonl", *extra]
    proc = subprocess.Popen([sys.executable, "-m", "tracker", *argv], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    jsonl = out / "exp1" / "demo.jsonl"
    while not (jsonl.exists() and jsonl.read_text().count("\n") >= 10):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    return proc


def _consistent(folder: Path) -> int:
    """Every output of the run is final and holds the same frames; their number."""
    assert sorted(os.listdir(folder)) == ["demo.json", "demo.jsonl", "demo.mp4"]   # no hidden leftovers
    frames = len((folder / "demo.jsonl").read_text().splitlines())
    assert len(load_sequence(folder / "demo.json").frames) == frames == video_frames(folder / "demo.mp4")
    return frames


@pytest.mark.slow
def test_ctrl_c_mid_run_finishes_every_output_and_exits_130(tmp_path):
    proc = _start(tmp_path)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "(interrupted)" in out and f"results saved to {tmp_path / 'exp1'}" in out
    assert _consistent(tmp_path / "exp1") >= 10


# `python -m tracker` that presses Ctrl+C on itself when it starts closing the JSONL file
CTRL_C_WHILE_FINISHING = """
import os, signal, sys
from engines.errors import run_cli
from tracker.__main__ import main
from tracker.export import JsonlWriter

close = JsonlWriter.close

def close_and_press_ctrl_c(self):
    os.kill(os.getpid(), signal.SIGINT)
    close(self)

JsonlWriter.close = close_and_press_ctrl_c
sys.exit(run_cli(main, sys.argv[1:], prog="tracker"))
"""


def test_ctrl_c_while_the_outputs_are_being_finished(tmp_path, short_clip):
    """Ctrl+C at the very end (the signal arrives while the first file is being closed)."""
    run = subprocess.run([sys.executable, "-c", CTRL_C_WHILE_FINISHING, "--source", str(short_clip), *OFFLINE,
                          "--out", str(tmp_path), "--export", "jsonl", "--export", "posetrack"],
                         cwd=REPO, capture_output=True, text=True, timeout=180,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 130, run.stderr
    names = sorted(os.listdir(tmp_path / "exp1"))
    assert names == ["short.json", "short.jsonl", "short.mp4"]
    assert len((tmp_path / "exp1" / "short.jsonl").read_text().splitlines()) == 6
    assert len(load_sequence(tmp_path / "exp1" / "short.json").frames) == 6
    assert video_frames(tmp_path / "exp1" / "short.mp4") == 6
    assert "stopping: finishing the outputs" in run.stderr


@pytest.mark.slow
def test_sigkill_leaves_a_journal_that_the_next_run_finishes(tmp_path, short_clip):
    proc = _start(tmp_path)
    proc.kill()
    proc.wait()
    killed = tmp_path / "exp1"
    assert {".running", ".demo.partial.jsonl", ".demo.partial.mp4", "demo.jsonl"} <= set(os.listdir(killed))
    assert not (killed / "demo.json").exists()
    lines = len((killed / "demo.jsonl").read_text().splitlines())

    run = tracker("--source", str(short_clip), *OFFLINE, "--out", str(tmp_path), "--no-save")
    assert run.returncode == 0, run.stderr
    assert f"wrote {killed / 'demo.json'}" in run.stderr and "removed" in run.stderr
    assert sorted(os.listdir(killed)) == ["demo.json", "demo.jsonl"]
    # the journal is written before the JSONL line of each frame: it holds the same frames or one more
    assert len(load_sequence(killed / "demo.json").frames) in (lines, lines + 1)
    assert sorted(os.listdir(tmp_path / "exp2")) == ["short.json"]


def test_a_live_run_is_left_alone(tmp_path):
    from tracker.runs import RunFolder, finish_killed_runs

    with RunFolder(tmp_path) as live:
        (live / ".demo.partial.mp4").write_bytes(b"being written")
        finish_killed_runs(tmp_path)      # another run starting beside it
        assert (live / ".demo.partial.mp4").exists() and (live / ".running").exists()
        (live / ".demo.partial.mp4").unlink()
    assert list(live.iterdir()) == []


# ------------------------------------------------------------- one-line errors in every CLI (item 13)

@pytest.mark.parametrize("package, argv, message", [
    ("tracker", ["--backend", "nosuch"], "argument --backend: invalid choice: 'nosuch'"),
    ("tracker", ["eval"], "the following arguments are required: --gt, --pred"),
    ("tracker", ["bench"], "the following arguments are required: --stage"),
    ("tracker", ["batch"], "the following arguments are required: INPUT, --out"),
    ("engines", ["export"], "the following arguments are required: --preset, --out"),
    ("engines", ["bench", "--batch", "x"], "argument --batch"),
    ("engines", ["fetch", "--bogus"], "unrecognized arguments: --bogus"),
    ("trainer", [], "the following arguments are required: --cfg"),
    ("trainer", ["synth", "images"], "the following arguments are required: --count, --out"),
])
def test_argument_errors_are_one_line_and_exit_2_in_every_cli(capsys, package, argv, message):
    import importlib

    entry = importlib.import_module(f"{package}.__main__").main
    assert run_cli(entry, argv, prog=package) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "usage:" not in err, err


def test_argument_error_from_the_real_command_line():
    run = subprocess.run([sys.executable, "-m", "tracker", "--backend", "nosuch"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.startswith("tracker: error: argument --backend: invalid choice: 'nosuch'")
    assert run.stderr.count("\n") == 1


def test_trainer_help_lists_the_verbs_beside_the_training_options():
    run = subprocess.run([sys.executable, "-m", "trainer", "--help"], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0 and run.stderr == ""
    assert run.stdout.startswith("usage: python -m trainer") and "--cfg CFG" in run.stdout
    verbs = run.stdout.split("other verbs (each takes --help):\n", 1)[1].splitlines()
    assert [line.split()[3] for line in verbs] == ["synth", "bundle", "merge"]
