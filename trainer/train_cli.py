"""`python -m trainer --cfg FILE [KEY VALUE ...]`: train one experiment.

Runs live in OUTPUT_DIR/<dataset>/<experiment>/run<N> (printed). By default the latest run
of the experiment is continued when its config matches (apart from RESUMABLE_CHANGES such as a
longer TRAIN.END_EPOCH, which a continued run keeps from its first command unless given again);
otherwise a new numbered run starts; a finished run is left alone. --new-run forces a new run,
--run DIR picks one. --max-epochs / --max-minutes bound this invocation, so repeating the same
command trains in resumable chunks. --evaluate WEIGHTS only validates. DDP under torchrun
(multi-node with torchrun's own --nnodes/--node_rank/--rdzv_endpoint):

    torchrun --nproc_per_node=4 -m trainer --cfg trainer/configs/coco/w32_256x192.yaml
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Sequence

import torch
import yaml

from engines.errors import UserError
from trainer.config import (Config, config_from_dict, config_to_dict, dump_config, load_config,
                            override_keys, set_key)

__all__ = ["main", "choose_run", "RESUMABLE_CHANGES"]

# Keys that may differ between a run's saved config and the invocation that continues it.
RESUMABLE_CHANGES = {("TRAIN", "END_EPOCH"), ("TRAIN", "LR_STEP"), ("TRAIN", "VAL_EVERY"),
                     ("WORKERS",), ("PRINT_FREQ",), ("TEST", "BATCH_SIZE_PER_GPU")}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line through run_cli instead of usage + exit
        raise UserError(f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m trainer", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cfg", required=True, help="experiment YAML, e.g. trainer/configs/coco/w32_256x192.yaml")
    p.add_argument("--run", help="run folder to use (continued when it holds a checkpoint)")
    p.add_argument("--new-run", action="store_true", help="start a new numbered run")
    p.add_argument("--max-epochs", type=int, help="train at most this many epochs in this invocation")
    p.add_argument("--max-minutes", type=float,
                   help="start no epoch that would end after this many minutes of this invocation")
    p.add_argument("--evaluate", metavar="WEIGHTS",
                   help="only validate these weights on the config's validation set and print COCO AP")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", metavar="KEY VALUE",
                   help="config overrides, dotted keys: TRAIN.LR 0.0005 DATASET.ROOT data/coco")
    return p


def _differences(a: dict, b: dict, prefix=()) -> set[tuple]:
    out = set()
    for key in a.keys() | b.keys():
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict) and key not in ("EXTRA",):
            out |= _differences(va, vb, prefix + (key,))
        elif va != vb:
            out.add(prefix + (key,))
    return out


def _run_number(path: Path) -> int:
    m = re.fullmatch(r"run(\d+)", path.name)
    return int(m.group(1)) if m else -1


def _checkpoint_epoch(run_dir: Path) -> int | None:
    from trainer.train import load_checkpoint

    ckpt = run_dir / "checkpoint.pth"
    return load_checkpoint(ckpt)["epoch"] if ckpt.exists() else None


def choose_run(cfg: Config, cfg_path: Path, overrides: Sequence[str], run: str | None = None,
               new_run: bool = False) -> tuple[Path, str, Config]:
    """(run folder, why, effective config).

    Without --run/--new-run this is the latest run of the experiment when its saved config
    matches (apart from RESUMABLE_CHANGES), else the next numbered one. A continued run keeps its
    saved values of RESUMABLE_CHANGES unless this command line overrides them, so a plain repeat
    of the first command goes on with the schedule that run started with."""
    base = Path(cfg.OUTPUT_DIR) / cfg.DATASET.NAME / cfg_path.stem
    runs = sorted((p for p in base.glob("run*") if _run_number(p) >= 0), key=_run_number)
    fresh = base / f"run{_run_number(runs[-1]) + 1 if runs else 1}"
    if run:
        chosen, why = Path(run), "as asked"
    elif new_run or not runs or not (runs[-1] / "config.yaml").exists():
        return fresh, "new run", cfg
    else:
        chosen, why = runs[-1], "continuing"
    saved_file = chosen / "config.yaml"
    if not saved_file.exists():
        return chosen, why, cfg
    saved = yaml.safe_load(saved_file.read_text()) or {}
    if not run:
        changed = _differences(saved, config_to_dict(cfg)) - RESUMABLE_CHANGES
        if changed:
            keys = ", ".join(".".join(k) for k in sorted(changed))
            return fresh, f"new run; {chosen} has a different config: {keys}", cfg
    given = override_keys(overrides)
    for path in RESUMABLE_CHANGES - given:
        value = saved
        for name in path:
            value = value.get(name) if isinstance(value, dict) else None
        if value is not None:
            set_key(cfg, path, value)
    return chosen, why, cfg


def trainer_class(cfg: Config):
    """The Trainer for MODEL.KIND: pose (trainer.train) or person detector (trainer.detection)."""
    if cfg.MODEL.KIND == "centernet":
        from trainer.detection import DetectorTrainer

        return DetectorTrainer
    from trainer.train import Trainer

    return Trainer


def evaluate_weights(trainer, weights: Path) -> int:
    from engines.models.weights import load_weights
    from trainer.distributed import unwrap
    from engines.formats.coco_eval import STAT_NAMES

    load_weights(unwrap(trainer.model), weights)
    stats = trainer.validate()
    shown = [f"{k} {stats[k]:.4f}" for k in STAT_NAMES if k in stats]
    if stats.get("val_loss", "") != "":
        shown.append(f"loss {stats['val_loss']:.6f}")
    print(f"{weights}: " + ", ".join(shown), flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg_path = Path(args.cfg)
    cfg = load_config(cfg_path, args.overrides)
    for flag in ("max_epochs", "max_minutes"):
        value = getattr(args, flag)
        if value is not None and value <= 0:
            raise UserError(f"--{flag.replace('_', '-')} must be > 0, got {value}")
    if args.device and args.device.split(":")[0] not in ("cpu", "cuda"):
        raise UserError(f"--device must be cpu or cuda, got {args.device!r}")
    if args.device and args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device here")

    from trainer.distributed import broadcast_object, init_distributed

    make_trainer = trainer_class(cfg)
    ctx = init_distributed(args.device)
    try:
        if args.evaluate:
            trainer = make_trainer(cfg, ctx, progress=not args.no_progress)
            return evaluate_weights(trainer, Path(args.evaluate)) if ctx.is_main else 0
        if ctx.is_main:
            run_dir, why, cfg = choose_run(cfg, cfg_path, args.overrides, args.run, args.new_run)
            done = _checkpoint_epoch(run_dir) if run_dir.exists() else None
            choice = (str(run_dir), why, config_to_dict(cfg), done)
        else:
            choice = None
        run_dir, why, cfg_dict, done = broadcast_object(choice, ctx)
        run_dir, cfg = Path(run_dir), config_from_dict(cfg_dict)
        if done is not None and done >= cfg.TRAIN.END_EPOCH:
            if ctx.is_main:
                print(f"{run_dir} has finished {done}/{cfg.TRAIN.END_EPOCH} epochs; nothing to do "
                      f"(raise TRAIN.END_EPOCH to go on, or --new-run to start again)", flush=True)
            return 0
        trainer = make_trainer(cfg, ctx, progress=not args.no_progress)  # checks data before any output
        if ctx.is_main:
            from engines.common.files import write_text_atomic

            run_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(run_dir / "config.yaml", dump_config(cfg))
            print(f"run folder: {run_dir} ({why}); {ctx.world_size} process(es) on {ctx.device}", flush=True)
        trainer.attach(run_dir)
        summary = trainer.fit(args.max_epochs, args.max_minutes)
        if ctx.is_main:
            state = "finished" if summary["finished"] else "paused (run the same command to continue)"
            best = f"best {trainer.best_metric} {summary['best_perf']:.4f} at epoch {summary['best_epoch']}" \
                if summary["best_epoch"] >= 0 else "not validated yet"
            print(f"{state}: epoch {summary['epoch']}/{summary['end_epoch']}, {best}; {run_dir}", flush=True)
            if cfg.MODEL.KIND == "hrnet":
                print(f"track with it: python -m tracker --pose {run_dir}/model_best.pth "
                      f"--preset {cfg.preset().name}", flush=True)
    finally:
        ctx.close()
    return 0
