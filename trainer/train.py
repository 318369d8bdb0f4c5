"""The training loop: Adam/SGD + MultiStepLR over JointsMSELoss, validation every epoch, atomic
checkpoints and exact resume.

Run folder contents (written by rank 0):
    config.yaml         resolved config of the latest invocation
    checkpoint.pth      model, optimizer, scheduler, scaler, epoch, best metric, history (every epoch)
    model_best.pth      state_dict of the best validation epoch (AP, or -loss without AP)
    final_state.pth     state_dict after the last epoch (loads with engines.models.weights.load_weights)
    metrics.csv, loss.png, ap.png, tb/ (TensorBoard), val_results.json (last COCO results)

Exact resume: model init, data order (DistributedSampler seeded by SEED + epoch) and every
augmentation (seeded by SEED, epoch, sample index) are functions of the config and the epoch,
and the checkpoint holds every piece of training state, so a run stopped at an epoch boundary
and resumed reaches the same weights as one that never stopped.
"""

from __future__ import annotations

import math
import random
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from engines.common.files import save_torch_atomic, write_json_atomic
from engines.formats.coco_eval import coco_keypoint_ap
from engines.errors import UserError
from engines.models.presets import build_network
from trainer.config import Config, config_to_dict
from trainer.datasets import DatasetBundle, build_datasets
from trainer.distributed import DistContext, broadcast_object, unwrap, wrap_model
from trainer.evaluate import predict, to_coco_results
from trainer.logs import write_metrics_csv, write_plots
from trainer.loss import build_loss

__all__ = ["Trainer", "CHECKPOINT", "BEST", "FINAL", "seed_everything", "load_checkpoint"]

CHECKPOINT, BEST, FINAL = "checkpoint.pth", "model_best.pth", "final_state.pth"


# what attach() reads; a file without them is not a training state
CHECKPOINT_KEYS = ("epoch", "state_dict", "optimizer", "scheduler", "scaler", "best_perf", "best_epoch",
                   "best_metric", "history")


def load_checkpoint(path: Path, device="cpu") -> dict:
    """The training state saved in `path`. A damaged file (empty, truncated, not a checkpoint) is
    a UserError naming it and the ways on; the file itself is never touched."""
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
        missing = [k for k in CHECKPOINT_KEYS if k not in ckpt] if isinstance(ckpt, dict) else ["all"]
        problem = f"no {', '.join(missing)}" if missing else ""
    except Exception as exc:  # torch raises EOFError, RuntimeError, KeyError, UnpicklingError...
        problem = (str(exc).splitlines() or [""])[0][:80] or type(exc).__name__
    if problem:
        best = Path(path).with_name(BEST)
        restore = f", or go on from the best weights: --new-run MODEL.PRETRAINED {best}" if best.exists() else ""
        raise UserError(f"{path} is damaged ({path.stat().st_size} bytes: {problem}) and was left as it is: "
                        f"start a new run with --new-run{restore}")
    return ckpt


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def init_weights(model: torch.nn.Module) -> None:
    """The official initialisation for training without pretrained weights: convolutions
    N(0, 0.001) with zero bias, BatchNorm weight 1 and bias 0 (the heatmaps start near zero)."""
    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            torch.nn.init.normal_(m.weight, std=0.001)
            if m.bias is not None:
                torch.nn.init.zeros_(m.bias)
        elif isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.ones_(m.weight)
            torch.nn.init.zeros_(m.bias)


def build_optimizer(cfg: Config, params) -> torch.optim.Optimizer:
    t = cfg.TRAIN
    if t.OPTIMIZER == "adam":
        return torch.optim.Adam(params, lr=t.LR, weight_decay=t.WD)
    return torch.optim.SGD(params, lr=t.LR, momentum=t.MOMENTUM, weight_decay=t.WD, nesterov=t.NESTEROV)


class Trainer:
    """Everything one run needs; `fit()` trains until END_EPOCH or the invocation's budget."""

    def __init__(self, cfg: Config, ctx: DistContext, progress: bool = True):
        """Build data, model and optimiser; every user mistake surfaces here, before any output."""
        self.cfg, self.ctx, self.run_dir = cfg, ctx, None
        self.progress = progress and ctx.is_main
        self.device = ctx.device
        self.cuda = self.device.type == "cuda"
        self.amp = cfg.TRAIN.AMP and self.cuda
        if cfg.TRAIN.SYNC_BN and ctx.enabled and not self.cuda:
            raise UserError("TRAIN.SYNC_BN needs CUDA (SyncBatchNorm has no CPU implementation)")
        seed_everything(cfg.SEED)
        self.data = self.build_data()
        model = self.build_model()
        self.memory_format = torch.channels_last if cfg.TRAIN.CHANNELS_LAST else torch.contiguous_format
        model = model.to(self.device, memory_format=self.memory_format)
        self.model = wrap_model(model, ctx, cfg.TRAIN.SYNC_BN)
        self.criterion = self.build_criterion()
        self.optimizer = build_optimizer(cfg, self.model.parameters())
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, cfg.TRAIN.LR_STEP,
                                                              cfg.TRAIN.LR_FACTOR)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.epoch, self.best_perf, self.best_epoch, self.history = 0, -math.inf, -1, []
        self.sampler = DistributedSampler(self.data.train, num_replicas=ctx.world_size, rank=ctx.rank,
                                          shuffle=cfg.TRAIN.SHUFFLE, seed=cfg.SEED)
        self.train_loader = DataLoader(self.data.train, cfg.TRAIN.BATCH_SIZE_PER_GPU, sampler=self.sampler,
                                       num_workers=cfg.WORKERS, pin_memory=self.cuda)
        self.val_loader = DataLoader(self.data.val, cfg.TEST.BATCH_SIZE_PER_GPU, shuffle=False,
                                     num_workers=cfg.WORKERS, pin_memory=self.cuda)
        self.writer = None

    # -- the task: pose by default; trainer.detection.DetectorTrainer overrides these -------
    def build_data(self) -> DatasetBundle:
        return build_datasets(self.cfg)

    def build_model(self) -> torch.nn.Module:
        preset = self.cfg.preset()
        model = build_network(preset)
        init_weights(model)
        if self.cfg.MODEL.PRETRAINED:
            from engines.models.weights import load_state_dict_file, load_weights
            from trainer.widen import widened

            # a narrower network of the same layout (lite_w16 for lite_w32) is grown into this one
            state = load_state_dict_file(self.cfg.MODEL.PRETRAINED, preset.network == "litehrnet")
            load_weights(model, widened(state, model))
        return model

    def build_criterion(self):
        return build_loss(self.cfg.LOSS)

    def batch_loss(self, batch: dict, autocast) -> torch.Tensor:
        x = batch["input"].to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        target = batch["target"].to(self.device, non_blocking=True)
        weight = batch["target_weight"].to(self.device, non_blocking=True)
        with autocast:
            output = self.model(x)
        return self.criterion(output, target, weight)

    # -- state ---------------------------------------------------------------------------
    def attach(self, run_dir: Path) -> None:
        """Use `run_dir` for outputs, continuing from its checkpoint when there is one."""
        self.run_dir = Path(run_dir)
        path = self.run_dir / CHECKPOINT
        if not path.exists():
            return
        ckpt = load_checkpoint(path, self.device)
        unwrap(self.model).load_state_dict(ckpt["state_dict"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        # the milestones of this invocation's config win (e.g. a longer schedule on resume)
        self.scheduler.milestones = type(self.scheduler.milestones)(self.cfg.TRAIN.LR_STEP)
        self.scaler.load_state_dict(ckpt["scaler"])
        self.epoch, self.best_perf, self.best_epoch = ckpt["epoch"], ckpt["best_perf"], ckpt["best_epoch"]
        self.history = ckpt["history"]
        if self.ctx.is_main:
            print(f"resumed {path} at epoch {self.epoch} (best {ckpt['best_metric']} "
                  f"{self.best_perf:.4f} at epoch {self.best_epoch})", flush=True)

    def checkpoint_state(self) -> dict:
        return {"epoch": self.epoch, "state_dict": unwrap(self.model).state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "best_perf": self.best_perf,
                "best_epoch": self.best_epoch, "best_metric": self.best_metric,
                "history": self.history, "config": config_to_dict(self.cfg)}

    @property
    def best_metric(self) -> str:
        return "AP" if self.data.val_annotations is not None else "-val_loss"

    # -- loop ------------------------------------------------------------------------------
    def fit(self, max_epochs: int | None = None, max_minutes: float | None = None) -> dict:
        """Train from the current epoch; stop at END_EPOCH, after `max_epochs` epochs, or before
        an epoch that would end past `max_minutes`. Returns a summary."""
        end = self.cfg.TRAIN.END_EPOCH
        start_time, done, last_epoch_s = time.monotonic(), 0, 0.0
        if self.ctx.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir / "tb"))
        try:
            while self.epoch < end:
                if max_epochs is not None and done >= max_epochs:
                    break
                elapsed = time.monotonic() - start_time
                if max_minutes is not None and done and elapsed + last_epoch_s > max_minutes * 60:
                    break
                t0 = time.monotonic()
                row = self.run_epoch()
                last_epoch_s = time.monotonic() - t0
                done += 1
                if self.ctx.is_main:
                    left = (end - self.epoch) * last_epoch_s
                    ap = f" AP {row['AP']:.4f}" if row.get("AP") != "" else ""
                    print(f"epoch {self.epoch}/{end} loss {row['train_loss']:.6f}{ap} "
                          f"{last_epoch_s:.0f}s, ETA {left / 60:.1f} min", flush=True)
        finally:
            if self.writer is not None:
                self.writer.close()
        finished = self.epoch >= end
        if finished and self.ctx.is_main and (done or not (self.run_dir / FINAL).exists()):
            save_torch_atomic(unwrap(self.model).state_dict(), self.run_dir / FINAL)
        self.ctx.barrier()
        return {"epoch": self.epoch, "end_epoch": end, "finished": finished, "epochs_run": done,
                "best_perf": self.best_perf, "best_epoch": self.best_epoch, "run_dir": str(self.run_dir)}

    def run_epoch(self) -> dict:
        cfg, epoch = self.cfg, self.epoch
        lr = self.optimizer.param_groups[0]["lr"]
        t0 = time.monotonic()
        train_loss = self.train_one_epoch()
        self.scheduler.step()
        self.epoch = epoch + 1
        row = {"epoch": self.epoch, "lr": lr, "train_loss": train_loss, "val_loss": "", "AP": "",
               "AP .5": "", "AR": ""}
        validate = self.epoch % cfg.TRAIN.VAL_EVERY == 0 or self.epoch == cfg.TRAIN.END_EPOCH
        if self.ctx.is_main:
            if validate:
                row.update(self.validate(self.run_dir / "val_results.json"))
                perf = row["AP"] if self.best_metric == "AP" else -row["val_loss"]
                if perf > self.best_perf:
                    self.best_perf, self.best_epoch = perf, self.epoch
                    save_torch_atomic(unwrap(self.model).state_dict(), self.run_dir / BEST)
            row["seconds"] = round(time.monotonic() - t0, 2)
            self.history.append(row)
            save_torch_atomic(self.checkpoint_state(), self.run_dir / CHECKPOINT)
            self.write_logs(row)
        self.ctx.barrier()
        # every rank keeps the same best metric, so a later checkpoint by any rank is consistent
        self.best_perf, self.best_epoch = broadcast_object((self.best_perf, self.best_epoch), self.ctx)
        return row

    def train_one_epoch(self) -> float:
        self.model.train()
        self.sampler.set_epoch(self.epoch)
        self.data.train.set_epoch(self.epoch)
        total, count = torch.zeros((), dtype=torch.float64), 0
        autocast = torch.autocast("cuda", dtype=torch.float16) if self.amp else nullcontext()
        bar = tqdm(self.train_loader, desc=f"epoch {self.epoch + 1}/{self.cfg.TRAIN.END_EPOCH}",
                   disable=not self.progress, dynamic_ncols=True, leave=False)
        for i, batch in enumerate(bar):
            loss = self.batch_loss(batch, autocast)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            n = len(batch["input"])
            total += loss.detach().double().cpu() * n
            count += n
            if i % max(self.cfg.PRINT_FREQ, 1) == 0:
                bar.set_postfix(loss=f"{total.item() / count:.6f}")
                if self.writer is not None:
                    step = self.epoch * len(self.train_loader) + i
                    self.writer.add_scalar("train/loss_iter", loss.item(), step)
        if self.ctx.enabled:
            stats = torch.tensor([total.item(), count], dtype=torch.float64, device=self.device)
            torch.distributed.all_reduce(stats)
            return float(stats[0] / stats[1])
        return float(total / max(count, 1))

    def validate(self, results_path: Path | None = None) -> dict:
        """Flip-tested predictions on the validation set -> COCO AP/AR (and loss on GT boxes);
        the COCO results JSON goes to `results_path` when given."""
        cfg, data = self.cfg, self.data
        with_loss = cfg.TEST.USE_GT_BBOX or data.val_annotations is None
        pred = predict(unwrap(self.model), self.val_loader, data.schema.flip_permutation(), self.device,
                       cfg.TEST.FLIP_TEST, cfg.TEST.SHIFT_HEATMAP, cfg.TEST.DECODE,
                       self.criterion if with_loss else None, cfg.TRAIN.CHANNELS_LAST, self.progress)
        out = {"val_loss": pred.get("loss", "")}
        if data.val_annotations is not None:
            results = to_coco_results(pred, data.schema.sigmas_array, cfg.TEST.IN_VIS_THRE,
                                      cfg.TEST.OKS_THRE, cfg.TEST.SOFT_NMS)
            if results_path is not None:
                write_json_atomic(results_path, results)
            out.update(coco_keypoint_ap(data.val_annotations, results, data.schema.sigmas_array))
        return out

    # -- logs ------------------------------------------------------------------------------
    def write_logs(self, row: dict) -> None:
        for key in ("lr", "train_loss", "val_loss", "AP", "AP .5", "AR"):
            if row.get(key, "") != "":
                self.writer.add_scalar(f"epoch/{key.replace(' ', '')}", row[key], row["epoch"])
        self.writer.flush()
        write_metrics_csv(self.history, self.run_dir / "metrics.csv")
        write_plots(self.history, self.run_dir)
