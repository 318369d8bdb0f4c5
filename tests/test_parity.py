"""`python -m engines parity`: backends against torch FP32 on a synthetic COCO-format set; a
broken backend (heatmaps one column off, as a layout bug would give) fails; bad input is one line."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engines.tools import parity
from engines.runtimes.backends import BACKENDS, TorchBackend, register_backend

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def annotations(make_synth_images):
    return make_synth_images("parity", "640x360", ("val", 12, 31)) / "val" / "annotations.json"


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "engines", "parity", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True)


@pytest.mark.slow
def test_onnxruntime_and_compile_agree_with_torch(annotations, capsys):
    assert parity.main(["--data", str(annotations), "--backend", "onnxruntime,compile", "--json"]) == 0
    reference, *rows = json.loads(capsys.readouterr().out)
    assert reference["backend"] == "torch" and reference["AP"] > 20  # bundled weights find people
    assert [row["backend"] for row in rows] == ["onnxruntime", "compile"]
    for row in rows:
        assert row["pass"] and row["px_p99"] <= parity.MAX_P99_PX
        assert row["people"] == reference["people"] > 20
        assert abs(row["AP_diff"]) <= parity.MAX_AP_POINTS


class ShiftedBackend(TorchBackend):
    """Torch with its heatmaps moved one column right: a subtly broken backend."""

    def run_tensor(self, images):
        return torch.roll(super().run_tensor(images), 1, dims=-1)


@pytest.fixture()
def shifted_backend():
    register_backend("shifted")(lambda model, size, options: ShiftedBackend(model, options))
    yield "shifted"
    del BACKENDS["shifted"]


def test_a_broken_backend_fails_the_check(annotations, shifted_backend, capsys):
    assert parity.main(["--data", str(annotations), "--backend", shifted_backend, "--limit", "4"]) == 1
    out = capsys.readouterr().out
    assert "parity FAILED for shifted:fp32" in out
    rows = parity.run_parity(annotations, [shifted_backend], "lite_w16_160x128", None, "cpu", limit=4)
    assert rows[1]["px_median"] > 1.0 and not rows[1]["pass"]


def test_limit_scores_only_the_chosen_images(annotations):
    coco, people = parity.load_people(annotations, None, 3, 17)
    assert len(people) == 3
    assert {image["id"] for image in coco["images"]} == {image_id for image_id, _, _ in people}
    labelled = [a for a in coco["annotations"] if not a.get("iscrowd") and a.get("num_keypoints", 0) > 0]
    assert sum(len(boxes) for _, _, boxes in people) == len(labelled)


@pytest.mark.parametrize("args, message", [
    (["--backend", "nosuch"], "unknown backend 'nosuch'"),
    (["--backend", "torch:int8"], "fp32 or fp16"),
    (["--limit", "0"], "--limit must be >= 1"),
    (["--weights", "/nonexistent.pth"], "/nonexistent.pth"),
    (["--images", "/nonexistent"], "cannot read image /nonexistent/images/"),
])
def test_bad_options_are_one_line(annotations, args, message):
    done = run_cli("--data", annotations, *args)
    assert done.returncode == 2 and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_bad_data_files_are_one_line(tmp_path, annotations):
    missing = run_cli("--data", tmp_path / "none.json")
    assert missing.returncode == 2 and "annotation file not found" in missing.stderr
    coco = json.loads(annotations.read_text())
    for person in coco["annotations"]:
        person["keypoints"] = person["keypoints"][:48]  # 16 joints
    sixteen = tmp_path / "mpii_like.json"
    sixteen.write_text(json.dumps(coco))
    wrong = run_cli("--data", sixteen, "--images", annotations.parent)
    assert wrong.returncode == 2 and "labels 16 joints, the preset 17" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1


def test_compare_measures_frame_pixels_on_confident_joints():
    reference = np.zeros((2, 17, 3), np.float32)
    reference[..., 2] = 0.9
    reference[1, :, 2] = 0.1  # not confident: ignored whatever its error
    moved = reference.copy()
    moved[0, :, 0] += 0.3
    moved[1, :, 0] += 50
    result = parity.compare(reference, moved)
    assert result["joints"] == 17 and result["px_max"] == pytest.approx(0.3, abs=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_backends_agree_with_torch_fp32(annotations):
    done = run_cli("--data", annotations, "--device", "cuda", "--backend", "torch,torch:fp16,compile:fp16",
                   "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert all(row["pass"] for row in json.loads(done.stdout))
