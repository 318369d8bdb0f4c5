"""`python -m tracker batch` without Ray: inputs (nested folders, globs, lists), the manifest, reruns
that do only what is left, videos nobody can decode (issue 28, case 6), a driver killed mid-video.
Real processes, real files, the bundled models."""

import json
import os
import socket
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engines.errors import run_cli
from fed_videos import FedVideo, cut_video, wait_until
from tracker.batch import main as batch
from tracker.manifest import Manifest

REPO = Path(__file__).parents[1]
ENV = {**{k: v for k, v in os.environ.items() if not k.startswith("OPENCV_FFMPEG")}, "OMP_NUM_THREADS": "1"}


def without_pictures(clip: bytes) -> bytes:
    """The MP4 with every byte of its pictures (the mdat box) zeroed: it opens, nothing decodes."""
    data, at = bytearray(clip), 0
    while at < len(data):
        size, kind = struct.unpack(">I4s", data[at:at + 8])
        if kind == b"mdat":
            data[at + 8:at + size] = bytes(size - 8)
        at += size
    return bytes(data)


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def files_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_videos_nobody_can_decode_are_failed_listed_and_fail_the_batch(tmp_path, short_clip):
    """Before: the batch stopped with exit 2 at the first bad video, and it sorted first."""
    videos, out = tmp_path / "videos", tmp_path / "out"
    videos.mkdir()
    (videos / "a_noise.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes())
    (videos / "b.mp4").write_bytes(short_clip.read_bytes())
    (videos / "c_blank.mp4").write_bytes(without_pictures(short_clip.read_bytes()))
    (videos / "d.mp4").write_bytes(short_clip.read_bytes())
    run = subprocess.run([sys.executable, "-m", "tracker", "batch", str(videos), "--out", str(out), "--bundled",
                          "--export", "posetrack", "--export", "jsonl"],
                         cwd=REPO, capture_output=True, text=True, timeout=300, env=ENV)
    assert run.returncode == 1, run.stderr
    assert files_in(out) == ["b.json", "b.jsonl", "d.json", "d.jsonl", "manifest.jsonl"]
    for name in ("b", "d"):
        assert len(json.loads((out / f"{name}.json").read_text())["images"]) == 6
        assert len((out / f"{name}.jsonl").read_text().splitlines()) == 6
    noise = f"cannot decode video {videos / 'a_noise.mp4'}"
    blank = f"no frame of video {videos / 'c_blank.mp4'} could be decoded"
    lines = run.stderr.splitlines()
    progress = [line for line in lines if line.startswith("[")]
    assert progress[0] == f"[1/4] a_noise.mp4: failed, {noise}" and progress[2] == f"[3/4] c_blank.mp4: failed, {blank}"
    assert progress[1].startswith("[2/4] b.mp4: 6 frames") and progress[3].startswith("[4/4] d.mp4: 6 frames")
    assert lines[-3:] == ["2 of 4 videos failed:", f"  a_noise.mp4: {noise}", f"  c_blank.mp4: {blank}"]
    assert lines[-4] == f"4 videos: 2 done now, 0 done before, 2 failed; manifest {out / 'manifest.jsonl'}"
    assert "Traceback" not in run.stderr and f"results saved to {out}" in run.stdout
    # the manifest: a line per video, in the order they were processed
    lines = records(out)
    assert [(r["video"], r["status"], r.get("reason")) for r in lines] == [
        ("a_noise.mp4", "failed", noise), ("b.mp4", "done", None), ("c_blank.mp4", "failed", blank),
        ("d.mp4", "done", None)]
    done = lines[1]
    assert done["input"] == str(videos / "b.mp4") and done["outputs"] == ["b.json", "b.jsonl"]
    assert (done["frames"], done["lost"], done["duration_s"]) == (6, 0, 0.24)   # 6 frames at 25 FPS
    assert done["fps"] > 0 and done["wall_s"] > 0 and done["tracks"] >= 0
    host, pid = done["worker"].rsplit(":", 1)
    assert host == socket.gethostname() and pid.isdigit() and pid != str(os.getpid())


def test_nested_folders_globs_and_lists_mirror_the_videos_paths(tmp_path, short_clip, capsys):
    videos = tmp_path / "videos"
    for name in ("a/x.mp4", "b/x.mp4", "b/deep/y.mp4", ".hidden/z.mp4", "b/.z.mp4"):
        (videos / name).parent.mkdir(parents=True, exist_ok=True)
        (videos / name).write_bytes(short_clip.read_bytes())
    # a folder, with --out inside it: the annotated videos written there are no inputs of a rerun
    out = videos / "out"
    for _ in range(2):
        assert batch([str(videos), "--out", str(out), "--bundled", "--save"]) == 0
    assert files_in(out) == ["a/x.json", "a/x.mp4", "b/deep/y.json", "b/deep/y.mp4", "b/x.json", "b/x.mp4",
                             "manifest.jsonl"]
    assert [r["video"] for r in records(out)] == ["a/x.mp4", "b/deep/y.mp4", "b/x.mp4"]
    assert "3 of 3 videos done before" in capsys.readouterr().err
    # a glob: names relative to its fixed leading folder
    out = tmp_path / "glob_out"
    assert batch([str(videos / "*" / "x.mp4"), "--out", str(out), "--bundled"]) == 0
    assert files_in(out) == ["a/x.json", "b/x.json", "manifest.jsonl"]
    # a list (relative to its folder; comments and blank lines skipped) and a video: names relative
    # to the deepest folder that holds them all
    listing = tmp_path / "lists" / "videos.txt"
    listing.parent.mkdir()
    listing.write_text(f"# the archive\n../videos/b/deep/y.mp4\n\n{videos / 'a' / 'x.mp4'}\n")
    out = tmp_path / "list_out"
    assert batch([str(listing), str(videos / "b" / "x.mp4"), "--out", str(out), "--bundled"]) == 0
    assert [(r["video"], r["input"]) for r in records(out)] == [
        ("a/x.mp4", str(videos / "a" / "x.mp4")), ("b/deep/y.mp4", str(videos / "b" / "deep" / "y.mp4")),
        ("b/x.mp4", str(videos / "b" / "x.mp4"))]
    assert len(json.loads((out / "b" / "deep" / "y.json").read_text())["images"]) == 6


def test_a_rerun_does_what_is_left_and_force_redoes_everything(tmp_path, short_clip, capsys):
    videos, out = tmp_path / "videos", tmp_path / "out"
    videos.mkdir()
    for name in ("a", "b"):
        (videos / f"{name}.mp4").write_bytes(short_clip.read_bytes())
    argv = [str(videos), "--out", str(out), "--bundled"]
    assert batch(argv) == 0
    stamps = {name: (out / name).stat().st_mtime_ns for name in ("a.json", "b.json")}
    assert batch(argv) == 0
    assert "2 of 2 videos done before" in capsys.readouterr().err
    assert len(records(out)) == 2 and stamps == {name: (out / name).stat().st_mtime_ns for name in stamps}
    (out / "b.json").unlink()   # an output gone: its video is not complete any more
    assert batch(argv) == 0
    assert [r["video"] for r in records(out)] == ["a.mp4", "b.mp4", "b.mp4"]
    assert (out / "a.json").stat().st_mtime_ns == stamps["a.json"]
    assert batch([*argv, "--export", "jsonl"]) == 0   # outputs this run asks for that the manifest lacks
    assert [r["outputs"] for r in records(out)[3:]] == [["a.jsonl"], ["b.jsonl"]]
    assert batch([*argv, "--force"]) == 0
    assert [r["video"] for r in records(out)[5:]] == ["a.mp4", "b.mp4"]


def test_bad_inputs_and_colliding_outputs_are_refused_before_any_work(tmp_path, short_clip, capsys):
    videos, out = tmp_path / "videos", tmp_path / "out"
    videos.mkdir()
    for name in ("x.mp4", "x.avi"):
        (videos / name).write_bytes(short_clip.read_bytes())
    (tmp_path / "list.txt").write_text(f"{videos / 'x.mp4'}\nnowhere.mp4\n")
    (tmp_path / "binary.dat").write_bytes(b"\xff\xfe\x00\x81")
    for argv, message in [
        ([str(videos)], "x.avi and x.mp4 would write the same outputs (x.*)"),
        ([str(tmp_path / "list.txt")], f"{tmp_path / 'list.txt'} line 2: no such video file: nowhere.mp4"),
        ([str(tmp_path / "none")], f"no such file or folder: {tmp_path / 'none'}"),
        ([str(videos / "*.mkv")], f"no videos (.mp4, "),
        ([str(tmp_path / "binary.dat")], "neither a video"),
        ([str(videos), "--retries", "-1"], "--retries: must be 0 or more"),
        ([str(videos), "--cpus-per-video", "0"], "--cpus-per-video: must be more than 0"),
    ]:
        assert run_cli(batch, [*argv, "--out", str(out)], prog="tracker") == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (err, message)
    assert not out.exists()


def test_a_ray_address_where_nothing_listens_is_one_line_at_once(tmp_path, short_clip, capsys):
    pytest.importorskip("ray", reason="ray is not installed (pip install -e '.[ray]')")
    with socket.socket() as probe:           # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for address, reason in [(f"127.0.0.1:{port}", "nothing answers there"), ("nonsense", "not HOST:PORT")]:
        argv = [str(short_clip), "--out", str(tmp_path / "out"), "--ray", address]
        assert run_cli(batch, argv, prog="tracker") == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"cannot join the Ray cluster at {address}: {reason}" in err[0], err


@pytest.mark.slow
def test_torchrun_ranks_take_their_shares_into_one_manifest(tmp_path, short_clip):
    """The static split of people who launch with torchrun, on the same core: rank r takes every
    2nd video from the r-th, and both ranks append to one manifest."""
    videos, out = tmp_path / "videos", tmp_path / "out"
    for name in ("a.mp4", "b.mp4", "sub/c.mp4", "sub/d.mp4"):
        (videos / name).parent.mkdir(parents=True, exist_ok=True)
        (videos / name).write_bytes(short_clip.read_bytes())
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "tracker", "batch", str(videos), "--out", str(out), "--bundled"],
                         cwd=REPO, capture_output=True, text=True, timeout=300, env=ENV)
    assert run.returncode == 0, run.stderr
    by_worker: dict[str, list[str]] = {}
    for record in records(out):
        assert record["status"] == "done" and record["frames"] == 6
        by_worker.setdefault(record["worker"], []).append(record["video"])
    assert sorted(sorted(names) for names in by_worker.values()) == [["a.mp4", "sub/c.mp4"], ["b.mp4", "sub/d.mp4"]]
    assert run.stderr.count("2 videos: 2 done now, 0 done before, 0 failed") == 2
    assert files_in(out) == ["a.json", "b.json", "manifest.jsonl", "sub/c.json", "sub/d.json"]


APPENDER = """
import sys
from tracker.manifest import Manifest
manifest, worker = Manifest(sys.argv[1]), sys.argv[2]
for n in range(300):
    manifest.append({"video": f"{worker}-{n}.mp4", "status": "done", "padding": "x" * 3000})
"""


def test_manifest_lines_stay_whole_with_writers_at_once_and_after_a_torn_line(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.jsonl").write_text('{"video": "a.mp4", "status": "done"}\n{"video": "b.mp4", "sta')  # killed
    writers = [subprocess.Popen([sys.executable, "-c", APPENDER, str(out), str(k)], cwd=REPO) for k in range(4)]
    assert [w.wait(timeout=120) for w in writers] == [0] * 4
    lines = (out / "manifest.jsonl").read_text().splitlines()
    assert lines[1] == '{"video": "b.mp4", "sta' and len(lines) == 2 + 4 * 300
    parsed = [json.loads(line) for line in lines[2:]]
    for k in range(4):   # each writer's lines whole and in its order
        assert [r["video"] for r in parsed if r["video"].startswith(f"{k}-")] == [f"{k}-{n}.mp4" for n in range(300)]
    latest = Manifest(out).latest()
    assert len(latest) == 1 + 4 * 300 and "b.mp4" not in latest


@pytest.mark.slow
def test_a_rerun_after_sigkill_of_the_batch_does_only_the_rest(tmp_path, short_clip):
    videos, out = tmp_path / "videos", tmp_path / "out"
    videos.mkdir()
    for name in ("a", "c"):
        (videos / f"{name}.mp4").write_bytes(short_clip.read_bytes())
    b = FedVideo(videos / "b.avi", cut_video(short_clip, tmp_path / "b_source.avi", 6, "MJPG").read_bytes())
    argv = [sys.executable, "-m", "tracker", "batch", str(videos), "--out", str(out), "--bundled",
            "--export", "posetrack", "--export", "jsonl"]
    proc = subprocess.Popen(argv, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        running = lambda: proc.poll() is None  # noqa: E731
        assert b.wait_for_reader(running) == proc.pid   # a is done, b under way
        b.feed(0.5)
        wait_until(lambda: (out / "b.jsonl").is_file(), running)
    finally:
        proc.kill()
        proc.communicate(timeout=60)
        b.close()
    assert [(r["video"], r["status"]) for r in records(out)] == [("a.mp4", "done")]
    # b's line file is there, yet b is not done: the rerun redoes it
    before = {name: ((out / name).read_bytes(), (out / name).stat().st_mtime_ns) for name in ("a.json", "a.jsonl")}
    b.path.unlink()
    b.path.write_bytes(b.data)
    rerun = subprocess.run(argv, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "1 of 3 videos done before" in rerun.stderr
    assert [line.split(":")[0] for line in rerun.stderr.splitlines() if line.startswith("[")] == ["[1/2] b.avi",
                                                                                                 "[2/2] c.mp4"]
    assert [(r["video"], r["status"]) for r in records(out)] == [("a.mp4", "done"), ("b.avi", "done"),
                                                                 ("c.mp4", "done")]
    assert before == {name: ((out / name).read_bytes(), (out / name).stat().st_mtime_ns) for name in before}
    assert files_in(out) == ["a.json", "a.jsonl", "b.json", "b.jsonl", "c.json", "c.jsonl", "manifest.jsonl"]
    for name in ("b", "c"):
        assert len((out / f"{name}.jsonl").read_text().splitlines()) == 6
        assert len(json.loads((out / f"{name}.json").read_text())["images"]) == 6


def test_a_ray_worker_loads_the_models_once_for_all_its_videos(tmp_path, short_clip, capsys, monkeypatch):
    """The function a Ray worker runs per video (called here as Ray calls it, without Ray): the
    models of its first video serve the next ones."""
    import tracker.ray_dealer as ray_dealer
    from tracker.batch import batch_settings, build_parser
    from tracker.batch_inputs import find_videos

    monkeypatch.setattr(ray_dealer, "_models", None)   # a fresh worker process
    videos, out = tmp_path / "videos", tmp_path / "out"
    videos.mkdir()
    for name in ("a", "b"):
        (videos / f"{name}.mp4").write_bytes(short_clip.read_bytes())
    args = build_parser().parse_args([str(videos), "--out", str(out), "--bundled"])
    found = find_videos(args.inputs)
    settings = batch_settings(args, found)
    results = [ray_dealer._track_on_worker(video, settings, args) for video in found]
    assert [(r.video, r.status, r.frames) for r in results] == [("a.mp4", "done", 6), ("b.mp4", "done", 6)]
    assert capsys.readouterr().err.count("models: ") == 1
    assert [r["video"] for r in records(out)] == ["a.mp4", "b.mp4"]
