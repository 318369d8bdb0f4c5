"""`python -m tracker batch --ray` on a real Ray cluster on this machine: 2 workers (2 CPUs, one a
video), a worker killed mid-video, the driver killed, Ctrl+C. The videos that decide when a test acts are fed by the
test through a pipe (tests/fed_videos.py): it knows when a worker has started one and which
process that is, and holds the video unfinished while it acts."""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest

from fed_videos import FedVideo, cut_video, wait_until

pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")
pytestmark = pytest.mark.slow

REPO = Path(__file__).parents[1]
FRAMES = 12   # of each fed video


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def ray_env():
    """Ray's session files under a short temporary folder (its socket paths must stay under 107
    characters) and a token of the tests' own, so nothing lands in the home folder."""
    temp = tempfile.mkdtemp(prefix="ray")
    yield {**{k: v for k, v in os.environ.items() if not k.startswith(("OPENCV_FFMPEG", "RAY_"))},
           "RAY_TMPDIR": temp, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
           "OMP_NUM_THREADS": "1", "RAY_COLOR_PREFIX": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(ray_env):
    """A Ray cluster of one machine with 2 CPUs, at 127.0.0.1:PORT; `ray start --block` stops
    what it started when it is terminated."""
    port = free_port()
    head = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
                             "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "2",
                             "--include-dashboard", "false", "--disable-usage-stats",
                             "--object-store-memory", str(100 * 2 ** 20)],
                            env=ray_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    said = []
    for line in head.stdout:
        said.append(line)
        if "Ray runtime started" in line:
            break
    else:
        pytest.fail("ray start failed:\n" + "".join(said))
    threading.Thread(target=head.stdout.read, daemon=True).start()   # keep its pipe from filling
    yield f"127.0.0.1:{port}"
    head.terminate()
    head.wait(timeout=120)


def start_batch(env, *argv) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tracker", "batch", *argv], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_workers_share_the_videos_a_killed_worker_s_video_is_retried(tmp_path, short_clip, cluster, ray_env):
    """Nested folders with equal names, a video nobody can decode and two fed videos, in a list.
    Both fed videos are open at once (two workers); the worker of one is killed mid-video and its
    video is done by the next try; the other's worker is killed on each of its 2 tries: failed."""
    videos, out = tmp_path / "videos", tmp_path / "out"
    for name in ("a/x.mp4", "b/x.mp4"):
        (videos / name).parent.mkdir(parents=True, exist_ok=True)
        (videos / name).write_bytes(short_clip.read_bytes())
    (videos / "noise.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes())
    data = cut_video(short_clip, tmp_path / "source.avi", 6, "MJPG").read_bytes()
    retried, doomed = FedVideo(videos / "b" / "retried.avi", data), FedVideo(videos / "doomed.avi", data)
    listing = tmp_path / "videos.txt"
    listing.write_text("".join(f"videos/{name}\n" for name in ("a/x.mp4", "b/x.mp4", "noise.mp4", "b/retried.avi",
                                                              "doomed.avi")))
    argv = [str(listing), "--out", str(out), "--bundled", "--export", "posetrack", "--export", "jsonl",
            "--ray", cluster, "--retries", "1"]
    batch = start_batch(ray_env, *argv)
    running = lambda: batch.poll() is None  # noqa: E731
    try:
        # the fed videos are the smallest files, dealt last: both open at once means two workers
        first = {video: video.wait_for_reader(running) for video in (retried, doomed)}
        assert first[retried] != first[doomed]
        retried.feed(0.5)
        retried.kill_reader()
        doomed.kill_reader()
        second = {video: video.wait_for_reader(running) for video in (retried, doomed)}
        assert not set(second.values()) & set(first.values())
        doomed.kill_reader()
        retried.feed(1.0)
        out_text, err = batch.communicate(timeout=300)
    finally:
        batch.kill()
        retried.close()
        doomed.close()
    assert batch.returncode == 1, err
    lines = {r["video"]: r for r in records(out)}
    assert {name: r["status"] for name, r in lines.items()} == {
        "a/x.mp4": "done", "b/x.mp4": "done", "noise.mp4": "failed", "b/retried.avi": "done", "doomed.avi": "failed"}
    assert len(records(out)) == 5
    assert lines["noise.mp4"]["reason"] == f"cannot decode video {videos / 'noise.mp4'}"
    assert lines["doomed.avi"]["reason"].startswith("its worker died on each of its 2 tries (")
    assert int(lines["b/retried.avi"]["worker"].rsplit(":", 1)[1]) == second[retried]
    assert len((out / "b" / "retried.jsonl").read_text().splitlines()) == 6
    assert len(json.loads((out / "b" / "retried.json").read_text())["images"]) == 6
    assert (out / "a" / "x.json").is_file() and (out / "b" / "x.json").is_file()
    assert err.splitlines()[-3:] == ["2 of 5 videos failed:", f"  noise.mp4: {lines['noise.mp4']['reason']}",
                                     f"  doomed.avi: {lines['doomed.avi']['reason']}"]
    assert "Traceback" not in err and f"results saved to {out}" in out_text
    # a rerun tries again only what failed
    doomed.path.unlink()
    doomed.path.write_bytes(data)
    rerun = subprocess.run([sys.executable, "-m", "tracker", "batch", *argv], cwd=REPO, env=ray_env,
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 1, rerun.stderr
    assert "3 of 5 videos done before" in rerun.stderr
    assert [(r["video"], r["status"]) for r in records(out)[5:]] in (
        [("noise.mp4", "failed"), ("doomed.avi", "done")], [("doomed.avi", "done"), ("noise.mp4", "failed")])


def test_a_rerun_after_sigkill_of_the_driver_does_only_the_rest(tmp_path, short_clip, cluster, ray_env):
    """The driver killed while a video is under way: Ray stops the dead driver's workers (the test
    keeps the video unfinished until its reader is gone, so a worker left running would never
    end), the video is not done, and the next run does it and nothing else."""
    videos, out = tmp_path / "videos", tmp_path / "out"
    videos.mkdir()
    (videos / "a.mp4").write_bytes(short_clip.read_bytes())
    fed = FedVideo(videos / "b.avi", cut_video(short_clip, tmp_path / "source.avi", 6, "MJPG").read_bytes())
    argv = [str(videos), "--out", str(out), "--bundled", "--export", "jsonl", "--ray", cluster]
    batch = start_batch(ray_env, *argv)
    running = lambda: batch.poll() is None  # noqa: E731
    try:
        fed.wait_for_reader(running)
        fed.feed(0.5)
        wait_until(lambda: (out / "manifest.jsonl").is_file(), running)   # a is done
        batch.kill()
        batch.communicate(timeout=60)
        fed.wait_for_reader_gone()
    finally:
        batch.kill()
        fed.close()
    assert [(r["video"], r["status"]) for r in records(out)] == [("a.mp4", "done")]
    before = ((out / "a.jsonl").read_bytes(), (out / "a.jsonl").stat().st_mtime_ns)
    fed.path.unlink()
    fed.path.write_bytes(fed.data)
    rerun = subprocess.run([sys.executable, "-m", "tracker", "batch", *argv], cwd=REPO, env=ray_env,
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "1 of 2 videos done before" in rerun.stderr
    assert [(r["video"], r["status"]) for r in records(out)] == [("a.mp4", "done"), ("b.avi", "done")]
    assert ((out / "a.jsonl").read_bytes(), (out / "a.jsonl").stat().st_mtime_ns) == before
    assert len((out / "b.jsonl").read_text().splitlines()) == 6


def test_ctrl_c_on_a_local_cluster_cancels_and_done_videos_stay_done(tmp_path, short_clip, ray_env):
    """`--ray` alone starts a cluster of this machine. Ctrl+C while a video is under way: exit 130,
    the finished video stays done, the one under way is not; the next run does just that one."""
    videos, out = tmp_path / "videos", tmp_path / "out"
    videos.mkdir()
    (videos / "a.mp4").write_bytes(short_clip.read_bytes())
    fed = FedVideo(videos / "b.avi", cut_video(short_clip, tmp_path / "source.avi", 6, "MJPG").read_bytes())
    argv = [str(videos), "--out", str(out), "--bundled", "--export", "jsonl"]
    batch = start_batch(ray_env, *argv, "--ray")
    try:
        fed.wait_for_reader(lambda: batch.poll() is None)
        fed.feed(0.5)
        wait_until(lambda: (out / "manifest.jsonl").is_file(), lambda: batch.poll() is None)   # a is done
        batch.send_signal(signal.SIGINT)
        out_text, err = batch.communicate(timeout=300)
    finally:
        batch.kill()
        fed.close()
    assert batch.returncode == 130, err
    assert "2 videos: 1 done now, 0 done before, 0 failed, 1 left for the next run (interrupted)" in err
    assert [(r["video"], r["status"]) for r in records(out)] == [("a.mp4", "done")]
    assert "Traceback" not in err
    fed.path.unlink()
    fed.path.write_bytes(fed.data)
    rerun = subprocess.run([sys.executable, "-m", "tracker", "batch", *argv], cwd=REPO, env=ray_env,
                           capture_output=True, text=True, timeout=300)   # without Ray: the same manifest
    assert rerun.returncode == 0, rerun.stderr
    assert "1 of 2 videos done before" in rerun.stderr
    assert [(r["video"], r["status"]) for r in records(out)] == [("a.mp4", "done"), ("b.avi", "done")]
    assert len((out / "b.jsonl").read_text().splitlines()) == 6


def test_a_video_larger_than_every_machine_is_refused_on_a_local_cluster(tmp_path, short_clip, ray_env):
    """It would wait for ever: one line, exit 2, nothing written."""
    videos, out = tmp_path / "videos", tmp_path / "out"
    videos.mkdir()
    (videos / "a.mp4").write_bytes(short_clip.read_bytes())
    run = subprocess.run([sys.executable, "-m", "tracker", "batch", str(videos), "--out", str(out), "--bundled",
                          "--ray", "--cpus-per-video", "1000"], cwd=REPO, env=ray_env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 2, run.stderr
    assert run.stderr.splitlines()[-1].startswith(
        "tracker: error: a video takes 1000 CPUs and 0 GPUs, and no machine of the cluster has that (")
    assert run.stderr.splitlines()[-1].endswith("): lower --cpus-per-video / --gpus-per-video")
    assert "Traceback" not in run.stderr and not out.exists()
