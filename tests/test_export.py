"""ONNX export through the CLI: one checked file, dynamic batch, parity with torch; bad input."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from engines.errors import run_cli
from engines.runtimes.export import INPUT_NAME, OUTPUT_NAME, main
from engines.models.presets import build_network
from engines.models.presets import get_preset

PRESET = "lite_w16_160x128"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Random-weight lite model saved as a trainer-style checkpoint, exported by the CLI (the one
    real export of this file: it takes seconds)."""
    folder = tmp_path_factory.mktemp("export")
    torch.manual_seed(3)
    model = build_network(PRESET).eval()
    weights = folder / "lite.pth"
    torch.save({"state_dict": model.state_dict(), "epoch": 1}, weights)
    out = folder / "lite.onnx"
    assert main(["--preset", PRESET, "--weights", str(weights), "--out", str(out)]) == 0
    return model, out, weights


def test_export_is_one_valid_file_with_dynamic_batch(exported):
    _, path, _ = exported
    assert sorted(p.name for p in path.parent.iterdir()) == ["lite.onnx", "lite.pth"]  # no .data
    graph = onnx.load(str(path))
    onnx.checker.check_model(graph, full_check=True)
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    assert graph.graph.input[0].name == INPUT_NAME and graph.graph.output[0].name == OUTPUT_NAME
    assert dims[0].dim_param and not dims[0].dim_value  # symbolic batch
    w, h = get_preset(PRESET).image_size
    assert [d.dim_value for d in dims[1:]] == [3, h, w]


@pytest.mark.parametrize("batch", [1, 3])
def test_onnxruntime_matches_torch(exported, batch):
    model, path, _ = exported
    w, h = get_preset(PRESET).image_size
    images = np.random.default_rng(batch).standard_normal((batch, 3, h, w), dtype=np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ours = session.run(None, {INPUT_NAME: images})[0]
    with torch.no_grad():
        expected = model(torch.from_numpy(images)).numpy()
    assert ours.shape == expected.shape
    assert np.abs(ours - expected).max() <= 1e-4


def test_estimator_on_onnxruntime_matches_torch_and_caches_its_export(exported, tmp_path, monkeypatch):
    import engines.runtimes.export
    from engines.pose.estimator import PoseEstimator

    _, onnx_file, weights = exported
    exports = []

    def export_by_copy(model, image_size, path):  # stands in for a second, identical export
        exports.append(Path(path))
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(onnx_file, path)
        return Path(path)

    monkeypatch.setattr(engines.runtimes.export, "export_onnx", export_by_copy)
    monkeypatch.setenv("HRNET_TRACKER_CACHE", str(tmp_path))
    by_ort = PoseEstimator(PRESET, weights=weights, backend="onnxruntime")
    PoseEstimator(PRESET, weights=weights, backend="onnxruntime")  # same weights: cache hit
    PoseEstimator(PRESET, weights={k: v + 0.01 if v.is_floating_point() else v
                                   for k, v in torch.load(weights)["state_dict"].items()},
                  backend="onnxruntime")  # other weights: a new cache entry
    assert len(exports) == 2 and exports[0] != exports[1]
    assert all(p.parent == tmp_path / "onnx" for p in exports)

    by_torch = PoseEstimator(PRESET, weights=weights)
    w, h = get_preset(PRESET).image_size
    images = np.random.default_rng(7).standard_normal((4, 3, h, w), dtype=np.float32)
    assert np.abs(by_ort.heatmaps(images) - by_torch.heatmaps(images)).max() <= 1e-4
    frame = np.random.default_rng(8).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    boxes = np.array([[10, 10, 120, 230], [150, 40, 300, 200]], np.float32)
    np.testing.assert_allclose(by_ort.estimate(frame, boxes)[..., 2],
                               by_torch.estimate(frame, boxes)[..., 2], atol=1e-4)


@pytest.mark.parametrize("batch", [1, 2, 5])
def test_parallel_cpu_sessions_split_the_batch_in_order(exported, batch):
    from engines.pose.estimator import PoseEstimator

    _, path, _ = exported
    one = PoseEstimator(PRESET, onnx_path=path, backend="onnxruntime", workers=1)
    three = PoseEstimator(PRESET, onnx_path=path, backend="onnxruntime", workers=3, threads=6)
    assert not one.backend.workers and len(three.backend.workers) == 3
    assert three.backend.session.get_session_options().intra_op_num_threads == 6  # for single crops
    assert all(s.get_session_options().intra_op_num_threads == 2 for s in three.backend.workers)
    w, h = get_preset(PRESET).image_size
    images = np.random.default_rng(batch).standard_normal((batch, 3, h, w), dtype=np.float32)
    # each crop distinct, so a slice returned out of order or twice shows
    np.testing.assert_array_equal(three.heatmaps(images), one.heatmaps(images))


def test_cli_corrupt_weights_is_one_line_and_exit_2(tmp_path):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x80\x02not really a pickle")
    result = subprocess.run([sys.executable, "-m", "engines", "export", "--preset", PRESET,
                             "--weights", str(corrupt), "--out", str(tmp_path / "c.onnx")],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot read weights file" in lines[0], result.stderr
    assert not list(tmp_path.glob("*.onnx"))


@pytest.mark.parametrize("args,message", [
    (["--preset", "w99"], "unknown preset 'w99'"),
    (["--preset", PRESET, "--weights", "nope.pth"], "weights file not found"),
])
def test_cli_bad_preset_or_missing_weights(tmp_path, capsys, args, message):
    # same path as `python -m engines export` (engines/__main__.py wraps main with run_cli)
    assert run_cli(main, [*args, "--out", str(tmp_path / "x.onnx")], prog="engines") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "x.onnx").exists()


def test_bench_reports_each_backend_preset_and_batch(capsys):
    from engines.tools.bench import main as bench_main

    argv = ["--backend", "torch", "--preset", "lite_w16_160x128", "--batch", "1,2",
            "--repeats", "2", "--warmup", "0", "--json"]
    assert bench_main(argv) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [(r["preset"], r["backend"], r["batch"]) for r in rows] == [
        ("lite_w16_160x128", "torch", 1), ("lite_w16_160x128", "torch", 2)]
    for row in rows:
        assert row["crops_per_s"] > 0 and 0.1 < row["gmac_per_crop"] < 0.5
        # crops_per_s is rounded to 0.1: under heavy load a batch can take seconds
        assert row["crops_per_s"] == pytest.approx(row["batch"] * 1000 / row["median_ms"], rel=0.05, abs=0.06)


def test_bench_people_times_the_whole_estimate_per_frame(capsys):
    from engines.tools.bench import main as bench_main, people_boxes

    argv = ["--backend", "onnxruntime", "--people", "1,6", "--frame", "320x240", "--repeats", "2",
            "--warmup", "0", "--json"]
    assert bench_main(argv) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [(r["people"], r["frame"], r["on_device"]) for r in rows] == [(1, "320x240", False), (6, "320x240", False)]
    assert rows[1]["ms_per_person"] == pytest.approx(rows[1]["median_ms"] / 6, abs=0.01)
    boxes = people_boxes(np.zeros((240, 320, 3), np.uint8), 6)
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 320).all() and (boxes[:, 3] <= 240).all()
