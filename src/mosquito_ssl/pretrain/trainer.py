"""Hugging Face ``Trainer`` set-up for the SSL methods: pretraining's arguments, callbacks, checkpoints.

    mosquito-ssl pretrain data/synth --preset tiny --epochs 20

Used by ``pretrain.train.pretrain``; nothing here reads data or writes final artifacts. The
arguments every training stage shares come from ``mosquito_ssl.training``; pretraining adds
its schedule and selects (and early-stops on) the Trainer's own validation loss ``eval_loss``,
the method's loss on the val split. Console output is ``progress.EpochReport``'s.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.integrations import TensorBoardCallback

from .. import runs, training
from ..model import methods
from .progress import EpochReport

log = logging.getLogger(__name__)

# A checkpoint is complete once trainer_state.json is there: the Trainer writes it after the
# model, optimizer, scheduler and RNG state, so a kill mid-save leaves a folder without it.
_CHECKPOINT_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt")


def _readable(checkpoint: Path) -> bool:
    """Every file a resume loads reads back: a kill while the Trainer writes trainer_state.json
    leaves it cut short, and a damaged disk or copy leaves any of them unreadable."""
    from safetensors import safe_open

    try:
        json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
        for name in ("optimizer.pt", "scheduler.pt"):
            torch.load(checkpoint / name, map_location="cpu", weights_only=True)
        weights = checkpoint / "model.safetensors"
        if weights.exists():
            with safe_open(str(weights), framework="pt") as fh:
                fh.keys()
    except Exception as exc:  # json, pickle, safetensors and torch each raise their own kinds
        log.warning("ignoring %s: it cannot be read back (%s); resuming from an earlier one", checkpoint, exc)
        return False
    return True


def last_complete_checkpoint(run_dir: Path) -> str | None:
    """Newest ``checkpoint-N`` folder that holds every file a resume needs, readable, else None."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None
    found = []
    for path in run_dir.glob("checkpoint-*"):
        match = re.fullmatch(r"checkpoint-(\d+)", path.name)
        if match and path.is_dir() and all((path / f).exists() for f in _CHECKPOINT_FILES):
            found.append((int(match.group(1)), path))
    for _, path in sorted(found, reverse=True):  # the newest that reads back
        if _readable(path):
            return str(path)
    return None


class IndexedClips(torch.utils.data.Dataset):
    """The cached clips of ``rows``, each with its row index (it seeds the clip's masks: ``batch_generator``)."""

    def __init__(self, cache, rows) -> None:
        from ..data.features import FeatureDataset

        self.clips, self.rows = FeatureDataset(cache, rows), rows

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict:
        return {**self.clips[i], "clip_index": int(self.rows[i])}


def collate(batch: list[dict]) -> dict:
    # return_loss=True makes the Trainer compute the loss in evaluation although the
    # self-supervised model takes no labels. clip_index stays a list: it is read on the host.
    return {
        "input_values": torch.stack([b["input_values"] for b in batch]),
        "clip_index": [b["clip_index"] for b in batch],
        "return_loss": True,
    }


class MethodStepCallback(TrainerCallback):
    """Before each optimizer step, tell the method the (seed, step) its draws are seeded from; after it,
    let the method update its EMA teacher (``after_optimizer_step``).

    The step and total come from the Trainer state, so a resumed run continues the same decay
    schedule and draws the same masks.
    """

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if model is not None:
            model.rng_step = (args.seed, state.global_step)

    def on_save(self, args, state, control, **kwargs):
        # the Trainer's model.safetensors is written 0600; the rest of a checkpoint follows the umask
        runs.umask_modes(Path(args.output_dir) / f"checkpoint-{state.global_step}")

    def on_step_end(self, args, state, control, model=None, **kwargs):
        hook = getattr(model, "after_optimizer_step", None)
        if hook is not None:
            hook(state.global_step, state.max_steps)


def training_arguments(cfg, run_dir: Path) -> TrainingArguments:
    """The shared policy (``mosquito_ssl.training``) plus pretraining's schedule and checkpoint selection;
    the method's traits (``model/methods.py``) decide checkpoint selection and the last partial batch."""
    method = methods.get(cfg.method)
    return training.training_arguments(
        run_dir,
        lr=cfg.lr,
        batch_size=cfg.batch_size,
        epochs=cfg.epochs,
        seed=cfg.seed,
        workers=cfg.workers,
        precision=cfg.precision,
        max_steps=cfg.max_steps,
        gradient_accumulation_steps=cfg.grad_accum,
        warmup_steps=cfg.warmup_ratio,  # a float < 1 is a ratio of all steps in transformers 5
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        logging_strategy="steps",
        logging_steps=cfg.logging_steps,
        save_total_limit=cfg.save_total_limit,
        load_best_model_at_end=not method.ema_target,
        dataloader_drop_last=method.drop_last,
        # The Trainer's own validation loss: the method's loss (not always an MSE) on the val split.
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        prediction_loss_only=True,
        torch_compile=cfg.compile,
        label_names=[],  # self-supervised: no labels; collate's return_loss asks for the loss
        ddp_find_unused_parameters=False,
    )


def build_trainer(cfg, model, cache, train_idx, val_idx, run_dir: Path) -> Trainer:
    """The Trainer of one pretraining: the method's model on the cached train / val rows."""
    from torch.utils.tensorboard import SummaryWriter

    method = methods.get(cfg.method)
    args = training_arguments(cfg, run_dir)
    callbacks: list = [MethodStepCallback(), EpochReport(f"validation {method.loss_name}")]
    if args.process_index == 0:
        callbacks.append(TensorBoardCallback(SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))))
    return training.make_trainer(
        args=args,
        model=model,
        train_dataset=IndexedClips(cache, train_idx),
        eval_dataset=IndexedClips(cache, val_idx),
        data_collator=collate,
        callbacks=callbacks,
        # EMA-target methods have no comparable eval loss across epochs: train to the end
        patience=None if method.ema_target else cfg.patience,
        threshold=cfg.threshold,
    )
