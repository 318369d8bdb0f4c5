"""The trainer end to end on generated synthetic people with a tiny network: loss goes down,
resume equals an uninterrupted run, torchrun DDP on CPU, outputs load in engines, bad input."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from engines.errors import run_cli
from engines.models.presets import build_network
from engines.models.weights import load_weights
from trainer.train_cli import main

REPO = Path(__file__).parents[1]
# lite_w16 at 64x64 input: ~10 ms per training step here
TINY = {"OUTPUT_DIR": "runs", "WORKERS": 0, "PRINT_FREQ": 1, "SEED": 7,
        "MODEL": {"PRESET": "lite_w16_160x128", "IMAGE_SIZE": [64, 64]},
        "DATASET": {"NAME": "synthetic", "ROOT": "data", "TRAIN_ANNOTATIONS": "train/annotations.json",
                    "TRAIN_IMAGES": "", "VAL_ANNOTATIONS": "val/annotations.json", "VAL_IMAGES": ""},
        "TRAIN": {"BATCH_SIZE_PER_GPU": 8, "END_EPOCH": 3, "LR": 0.002, "LR_STEP": [2]},
        "TEST": {"BATCH_SIZE_PER_GPU": 16, "USE_GT_BBOX": True}}


@pytest.fixture(scope="module")
def synth_data(make_synth_images) -> Path:
    return make_synth_images("synth", "160x120", ("train", 8, 1), ("val", 4, 2))


def write_cfg(tmp_path: Path, data: Path, **sections) -> Path:
    cfg = yaml.safe_load(yaml.safe_dump(TINY))
    cfg["OUTPUT_DIR"] = str(tmp_path / "runs")
    cfg["DATASET"]["ROOT"] = str(data)
    for name, values in sections.items():
        if isinstance(values, dict):
            cfg[name].update(values)
        else:
            cfg[name] = values
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def train(*argv: str) -> int:
    return run_cli(main, ["--no-progress", *argv], prog="trainer")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, synth_data) -> tuple[Path, Path]:
    """(config, run folder) of 3 epochs trained in one invocation, with a worker process."""
    tmp = tmp_path_factory.mktemp("once")
    cfg = write_cfg(tmp, synth_data, TRAIN={"END_EPOCH": 3, "LR_STEP": [2]}, WORKERS=1)
    assert train("--cfg", str(cfg)) == 0
    return cfg, tmp / "runs" / "synthetic" / "tiny" / "run1"


def test_training_lowers_the_loss_and_writes_a_run(uninterrupted):
    _, run = uninterrupted
    ckpt = torch.load(run / "checkpoint.pth", weights_only=True)
    losses = [row["train_loss"] for row in ckpt["history"]]
    assert len(losses) == 3 and losses[-1] < 0.85 * losses[0]
    assert set(ckpt) >= {"state_dict", "optimizer", "scheduler", "scaler", "epoch", "best_perf"}
    assert ckpt["epoch"] == 3 and ckpt["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.0002)
    for name in ("config.yaml", "model_best.pth", "final_state.pth", "metrics.csv", "loss.png", "ap.png"):
        assert (run / name).stat().st_size > 0, name
    assert any((run / "tb").iterdir())
    assert len((run / "metrics.csv").read_text().splitlines()) == 4
    load_weights(build_network("lite_w16_160x128"), run / "final_state.pth")  # engines reads it
    assert yaml.safe_load((run / "config.yaml").read_text())["TRAIN"]["END_EPOCH"] == 3


def test_a_run_at_its_own_input_size_tracks_with_the_preset_it_names(uninterrupted):
    from engines.pose.loading import load_pose

    _, run = uninterrupted   # lite_w16_160x128's network trained at a 64x64 input
    estimator = load_pose(run / "model_best.pth", "lite_w16_64x64", backend="torch")
    assert estimator.preset.image_size == (64, 64)
    crops = np.random.default_rng(0).random((2, 3, 64, 64), dtype=np.float32)
    assert estimator.heatmaps(crops).shape == (2, 17, 16, 16)


def test_a_wider_pose_network_grows_from_narrow_weights_and_loads_by_itself(tmp_path, uninterrupted):
    from engines.pose.loading import infer_preset
    from engines.models.weights import load_state_dict_file
    from trainer.widen import widened

    cfg, run = uninterrupted   # lite_w16's network, trained: its BatchNorm statistics are not trivial
    narrow_state = load_state_dict_file(run / "final_state.pth")
    narrow = load_weights(build_network("lite_w16_160x128"), narrow_state).eval()
    wide = build_network("lite_w32_160x128")
    load_weights(wide, widened(narrow_state, wide)).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(narrow(x), wide(x), atol=1e-5)

    out = tmp_path / "grown"
    assert train("--cfg", str(cfg), "--run", str(out), "MODEL.PRESET", "lite_w32_160x128",
                 "MODEL.PRETRAINED", str(run / "final_state.pth"), "TRAIN.END_EPOCH", "1") == 0
    grown = load_state_dict_file(out / "final_state.pth")
    assert infer_preset(grown).name == "lite_w32_160x128"   # the tracker needs no --preset for it
    assert grown["final_layer.weight"].shape[1] == 32


def test_evaluate_only_reproduces_the_last_validation(uninterrupted, capsys):
    cfg, run = uninterrupted
    last = torch.load(run / "checkpoint.pth", weights_only=True)["history"][-1]
    capsys.readouterr()
    assert train("--cfg", str(cfg), "--evaluate", str(run / "final_state.pth")) == 0
    out = capsys.readouterr().out
    assert f"AP {last['AP']:.4f}, AP .5 {last['AP .5']:.4f}" in out and f"loss {last['val_loss']:.6f}" in out


@pytest.mark.slow  # the ONNX export alone takes ~8 s here
def test_final_state_loads_in_engines_and_exports_to_onnx(tmp_path, synth_data):
    cfg = write_cfg(tmp_path, synth_data, TRAIN={"END_EPOCH": 1})
    assert train("--cfg", str(cfg)) == 0
    run = tmp_path / "runs" / "synthetic" / "tiny" / "run1"
    from engines.runtimes.export import export_onnx
    import onnxruntime as ort

    model = load_weights(build_network("lite_w16_160x128"), run / "final_state.pth").eval()
    x = torch.randn(2, 3, 64, 64)
    onnx_path = export_onnx(model, (64, 64), tmp_path / "tiny.onnx")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert np.abs(got - model(x).detach().numpy()).max() < 1e-4


def test_resumed_run_equals_uninterrupted_run(tmp_path, uninterrupted, capsys):
    cfg, once = uninterrupted
    chunks = tmp_path / "chunks"
    assert train("--cfg", str(cfg), "--run", str(chunks), "--max-epochs", "2") == 0
    assert not (chunks / "final_state.pth").exists()
    assert torch.load(chunks / "checkpoint.pth", weights_only=True)["epoch"] == 2
    assert train("--cfg", str(cfg), "--run", str(chunks)) == 0
    assert "resumed" in capsys.readouterr().out
    a = torch.load(once / "final_state.pth", weights_only=True)
    b = torch.load(chunks / "final_state.pth", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ha = torch.load(once / "checkpoint.pth", weights_only=True)["history"]
    hb = torch.load(chunks / "checkpoint.pth", weights_only=True)["history"]
    assert [r["train_loss"] for r in ha] == [r["train_loss"] for r in hb]
    assert [r["AP"] for r in ha] == [r["AP"] for r in hb]


def test_repeated_invocations_continue_the_latest_matching_run(tmp_path, synth_data, capsys):
    cfg = write_cfg(tmp_path, synth_data)  # the YAML says 3 epochs
    base = tmp_path / "runs" / "synthetic" / "tiny"
    short = ["TRAIN.END_EPOCH", "2"]
    assert train("--cfg", str(cfg), *short, "--max-epochs", "1") == 0
    assert train("--cfg", str(cfg), "--max-epochs", "1") == 0   # continues run1, keeps its 2 epochs
    assert train("--cfg", str(cfg)) == 0                         # finished: nothing to do
    out = capsys.readouterr().out
    assert out.count(f"run folder: {base / 'run1'}") == 2 and f"{base / 'run1'} has finished 2/2 epochs" in out
    assert f"track with it: python -m tracker --pose {base / 'run1'}/model_best.pth --preset lite_w16_64x64" in out
    assert (base / "run1" / "final_state.pth").exists()
    assert train("--cfg", str(cfg), "TRAIN.END_EPOCH", "3") == 0  # a longer schedule goes on
    ckpt = torch.load(base / "run1" / "checkpoint.pth", weights_only=True)
    final = torch.load(base / "run1" / "final_state.pth", weights_only=True)
    assert ckpt["epoch"] == 3 and all(torch.equal(final[k], v) for k, v in ckpt["state_dict"].items())
    assert train("--cfg", str(cfg), "TRAIN.LR", "0.01", "--max-epochs", "1") == 0  # another recipe
    assert f"run folder: {base / 'run2'} (new run; {base / 'run1'} has a different config: TRAIN.LR)" \
        in capsys.readouterr().out


def test_torchrun_two_processes_on_cpu(tmp_path, synth_data):
    cfg = write_cfg(tmp_path, synth_data, TRAIN={"END_EPOCH": 2, "BATCH_SIZE_PER_GPU": 4})
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "trainer", "--cfg", str(cfg), "--no-progress"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "2 process(es) on cpu" in proc.stdout
    run = tmp_path / "runs" / "synthetic" / "tiny" / "run1"
    ckpt = torch.load(run / "checkpoint.pth", weights_only=True)
    assert ckpt["epoch"] == 2 and not any(k.startswith("module.") for k in ckpt["state_dict"])
    assert set(ckpt) == {"epoch", "state_dict", "optimizer", "scheduler", "scaler", "best_perf",
                         "best_epoch", "best_metric", "history", "config"}
    assert ckpt["state_dict"].keys() == build_network("lite_w16_160x128").state_dict().keys()
    load_weights(build_network("lite_w16_160x128"), run / "final_state.pth")


def test_bad_input_from_the_command_line_is_one_line_and_exit_2(tmp_path, synth_data):
    cfg = write_cfg(tmp_path, synth_data)
    proc = subprocess.run([sys.executable, "-m", "trainer", "--cfg", str(cfg), "DATASET.ROOT", "/nonexistent/synth"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == "trainer: error: DATASET.TRAIN_ANNOTATIONS not found: /nonexistent/synth/train/annotations.json\n"
    assert not (tmp_path / "runs").exists()  # nothing written before the inputs check out


@pytest.mark.parametrize("extra, message", [
    (["TRAIN.LEARNING_RATE", "0.1"], "unknown config key 'TRAIN.LEARNING_RATE'"),
    (["TRAIN.END_EPOCH", "many"], "TRAIN.END_EPOCH: expected int, got 'many'"),
    (["TRAIN.END_EPOCH"], "has no value"),
    (["--max-epochs", "0"], "--max-epochs must be > 0"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_input_stops_before_training(tmp_path, synth_data, capsys, extra, message):
    cfg = write_cfg(tmp_path, synth_data)
    assert train("--cfg", str(cfg), *extra) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "runs").exists()


def test_missing_config_file_is_one_line(capsys):
    assert train("--cfg", "no/such.yaml") == 2
    assert capsys.readouterr().err == "trainer: error: config file not found: no/such.yaml\n"
