"""`python -m tracker`: error paths (one line, exit 2), run folders, exports, --jsonl -, the demo."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from engines.errors import run_cli
from engines.pose.estimator import PoseEstimator
from tracker.app import main
from tracker.runs import next_run_dir
from tracker.sources import DEMO_CLIP


@pytest.mark.parametrize("argv, message", [
    (["--source", "missing.mp4"], "not found"),
    (["--source", "notes.txt"], "unsupported"),
    (["--source", "broken.jpg"], "cannot read image broken.jpg: damaged"),
    (["--source", "webcam:5"], "no camera"),
    (["--source", "http://127.0.0.1:1/stream.mjpg"], "cannot reach"),
    (["--source", "demo", "--pose", "no-such-model"], "not a pose model"),
    (["--source", "demo", "--preset", "nosuch"], "unknown preset 'nosuch'"),
    (["--source", "demo", "--preset", "w32_256x192"], "applies to a checkpoint file"),
    (["--source", "demo", "--show"], "display"),
    (["--source", "demo", "--det", "nosuch"], "not a detector (yolox-nano"),
    (["--source", "demo", "--half"], "--half is for --device cuda"),
    (["--source", "demo", "--backend", "tensorrt", "--device", "cpu"], "TensorRT"),
    (["--source", "demo", "--batch-profile", "8,1,32"], "batch profile must satisfy"),
])
def test_user_errors_are_one_line_and_exit_2(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "broken.jpg").write_bytes(b"not a JPEG")
    assert run_cli(main, argv, prog="tracker") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "runs").exists()        # nothing half-made


def test_run_folders_are_numbered(tmp_path):
    assert [next_run_dir(tmp_path).name for _ in range(3)] == ["exp1", "exp2", "exp3"]


def test_two_sources_with_every_export(tmp_path, capsys, lite_weights, short_clip):
    argv = ["--source", str(short_clip), "--source", str(short_clip), "--pose", str(lite_weights), "--bundled",
            "--out", str(tmp_path), "--det-interval", "2"]
    for fmt in ("posetrack", "posetrack17", "jsonl", "csv", "mot"):
        argv += ["--export", fmt]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"results saved to {tmp_path / 'exp1'}" in out and "12 frames" in out
    names = sorted(p.name for p in (tmp_path / "exp1").iterdir())
    assert names == sorted(f"{stem}{suffix}" for stem in ("short", "short_1")
                           for suffix in (".json", ".pt17.json", ".jsonl", ".csv", ".mot.txt", ".mp4"))
    assert len(json.loads((tmp_path / "exp1" / "short.json").read_text())["images"]) == 6


@pytest.mark.parametrize("flags, device, interval", [
    ([], "cpu", 2),                             # real footage on the CPU: the knee (README)
    (["--bundled"], "cpu", 1),                  # the bundled models track every frame's detections
    ([], "cuda", 1),
    (["--det-interval", "3"], "cpu", 3)])
def test_the_detector_runs_every_frame_but_on_the_cpus_real_footage(monkeypatch, tmp_path, lite_weights, short_clip,
                                                                  flags, device, interval):
    import engines.detectors
    import tracker.app as app

    calls = []

    def counting_detector(name, **options):
        detector = load_detector("centernet", score_thresh=options["score_thresh"])
        detect = detector.detect
        detector.detect = lambda frame: calls.append(1) or detect(frame)
        return detector

    load_detector = engines.detectors.load_detector
    monkeypatch.setattr(engines.detectors, "load_detector", counting_detector)
    monkeypatch.setattr(app, "pose_from_args", lambda *args: PoseEstimator("lite_w16_160x128", lite_weights))
    argv = ["--source", str(short_clip), "--det", "centernet", "--device", device, "--no-save",
            "--out", str(tmp_path), *flags]
    assert main(argv) == 0
    assert len(calls) == len(range(0, 6, interval))   # of the clip's 6 frames


def test_jsonl_to_stdout_alone_writes_nothing_else(tmp_path, lite_weights, short_clip):
    """`--jsonl - --no-save`: stdout holds the JSON lines and nothing else, and no run folder is
    made (the tracks went to stdout in place of the default PoseTrack file)."""
    out = tmp_path / "runs"
    result = subprocess.run(
        [sys.executable, "-m", "tracker", "--source", str(short_clip), "--pose", str(lite_weights), "--bundled",
         "--out", str(out), "--no-save", "--jsonl", "-"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["frame"] for r in records] == list(range(6))
    assert "6 frames" in result.stderr and "results saved to" not in result.stderr
    assert not out.exists()


def test_jsonl_to_stdout_with_other_outputs_makes_a_run_folder_for_them(tmp_path, capfd, lite_weights, short_clip):
    assert main(["--source", str(short_clip), "--pose", str(lite_weights), "--bundled", "--out", str(tmp_path),
                 "--jsonl", "-", "--export", "csv"]) == 0
    out, err = capfd.readouterr()
    assert len(out.splitlines()) == 6 and f"results saved to {tmp_path / 'exp1'}" in err
    assert sorted(p.name for p in (tmp_path / "exp1").iterdir()) == ["short.csv", "short.mp4"]   # no PoseTrack


def test_a_single_image_shows_its_people(tmp_path):
    """A photo is a one-frame source: its people are reported, not held back until a track has
    min_hits frames (the first frame's people are confirmed at once), and drawn on a picture."""
    ok, image = cv2.VideoCapture(str(DEMO_CLIP)).read()
    assert ok, "bundled demo clip unreadable"
    cv2.imwrite(str(tmp_path / "photo.png"), image)
    assert main(["--source", str(tmp_path / "photo.png"), "--bundled", "--out", str(tmp_path / "runs"),
                 "--export", "jsonl"]) == 0
    run = tmp_path / "runs" / "exp1"
    records = [json.loads(line) for line in (run / "photo.jsonl").read_text().splitlines()]
    assert len(records) == 1 and len(records[0]["tracks"]) >= 2
    assert sorted(p.name for p in run.iterdir()) == ["photo.jpg", "photo.jsonl"]   # a picture, not a video
    drawn = cv2.imread(str(run / "photo.jpg"))
    assert drawn.shape == image.shape and np.abs(drawn.astype(int) - image).mean() > 0.5   # skeletons on it


# Below what the bundled models measured on the demo clip (mAP 77.7, MOTA 70.5, IDF1 67.7, HOTA 46.4).
DEMO_MIN_MAP = 77.0
DEMO_MIN_MOTA = 69.5
DEMO_MIN_IDF1 = 67.0
DEMO_MIN_HOTA = 45.5


@pytest.mark.slow
def test_default_command_tracks_the_demo_clip(tmp_path, monkeypatch, capsys):
    """`python -m tracker` with no options: bundled clip and weights, scored by `tracker eval`."""
    from tracker.evaluate.cli import main as evaluate

    monkeypatch.chdir(tmp_path)
    assert main([]) == 0
    run = tmp_path / "runs" / "track" / "exp1"
    assert f"results saved to {run.relative_to(tmp_path)}" in capsys.readouterr().out
    assert (run / "demo.mp4").is_file()
    pred = tmp_path / "pred"
    pred.mkdir()
    (pred / "demo.json").write_bytes((run / "demo.json").read_bytes())
    assert evaluate(["--gt", str(DEMO_CLIP.parent / "demo_gt"), "--pred", str(pred), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["mAP"]["Total"] >= DEMO_MIN_MAP and scores["MOTA"]["Total"] >= DEMO_MIN_MOTA
    assert scores["IDF1"]["Total"] >= DEMO_MIN_IDF1 and scores["HOTA"]["Total"] >= DEMO_MIN_HOTA


def test_batch_shards_videos_by_rank(tmp_path, monkeypatch, lite_weights, short_clip):
    from tracker.batch import main as batch

    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a", "b", "c"):
        (videos / f"{name}.mp4").write_bytes(short_clip.read_bytes())
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert batch([str(videos), "--out", str(tmp_path / "out"), "--pose", str(lite_weights), "--bundled"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["b.json", "manifest.jsonl"]
    assert len(json.loads((tmp_path / "out" / "b.json").read_text())["images"]) == 6
    assert run_cli(batch, [str(tmp_path / "nothing"), "--out", str(tmp_path)]) == 2


def demo_cut(folder, first: int, count: int):
    """Frames first .. first + count - 1 of the demo clip as an MP4 of their own."""
    path, reader, writer = folder / "cut.mp4", cv2.VideoCapture(str(DEMO_CLIP)), None
    reader.set(cv2.CAP_PROP_POS_FRAMES, first)
    for _ in range(count):
        ok, image = reader.read()
        assert ok, "bundled demo clip unreadable"
        writer = writer or cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, image.shape[1::-1])
        writer.write(image)
    writer.release()
    return path


@pytest.mark.slow
def test_an_unchanged_copy_of_the_default_tracker_file_tracks_as_without_it(tmp_path):
    """The file the README says to start from changes nothing by itself: the detector's calibrated
    thresholds still apply (issue 28: the copy used to replace them with 0.3 / 0.5 / 0.6)."""
    from tracker.tracking import DEFAULT_TRACKER_YAML

    clip = demo_cut(tmp_path, 60, 6)   # people whose detections score between the two sets of thresholds
    copy, generic = tmp_path / "copy.yaml", tmp_path / "generic.yaml"
    copy.write_text(DEFAULT_TRACKER_YAML.read_text())
    generic.write_text("low_score: 0.3\nhigh_score: 0.5\nnew_track_score: 0.6\n")

    def posetrack(name, *options):
        assert main(["--source", str(clip), "--bundled", "--no-save", "--out", str(tmp_path / name), *options]) == 0
        return (tmp_path / name / "exp1" / "cut.json").read_bytes()

    plain = posetrack("plain")
    assert posetrack("copy", "--tracker", str(copy)) == plain
    assert posetrack("generic", "--tracker", str(generic)) != plain   # the thresholds matter on this cut


def test_backend_choices_are_the_engines_backends():
    from engines.runtimes.backends import backend_names
    from tracker.app import BACKEND_CHOICES

    assert sorted(BACKEND_CHOICES) == sorted(backend_names())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("gpu_options", [[], ["--half"], ["--backend", "compile", "--half"]])
def test_cuda_run_tracks_the_people_the_cpu_run_tracks(tmp_path, short_clip, gpu_options):
    def people_per_frame(*options):
        out = tmp_path / ("_".join(options) or "plain")
        assert main(["--source", str(short_clip), "--bundled", "--no-save", "--out", str(out), *options]) == 0
        posetrack = json.loads(next((out / "exp1").glob("*.json")).read_text())
        return sorted(a["image_id"] for a in posetrack["annotations"])

    cpu = people_per_frame("--device", "cpu")
    cuda = people_per_frame("--device", "cuda", *gpu_options)
    assert len(cpu) > 6 and abs(len(cuda) - len(cpu)) <= len(cpu) // 10


@pytest.mark.parametrize("flags, decode", [([], "dark"), (["--decode", "standard"], "standard")])
def test_decode_flag_reaches_the_estimator(flags, decode):
    from tracker.app import build_parser, load_models

    args = build_parser().parse_args(flags)
    assert load_models(args, ["demo"])[1].decode == decode


@pytest.mark.slow
def test_a_closed_pipe_ends_the_run_quietly(tmp_path):
    """`python -m tracker --jsonl - | head -n 1`: the reader goes away, the run stops with exit 0."""
    run = subprocess.Popen([sys.executable, "-m", "tracker", "--jsonl", "-", "--no-save", "--out", str(tmp_path)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = json.loads(run.stdout.readline())
    run.stdout.close()                                   # as `head -n 1` does
    err = run.stderr.read()
    assert run.wait() == 0 and first["frame"] == 0
    assert "error" not in err and "Traceback" not in err and "results saved" not in err
