"""Hugging Face ``Trainer`` set-up for the SSL methods: arguments, ``eval_mse``, callbacks, checkpoints.

Used by ``pretrain.train.pretrain`` (``mosquito-ssl pretrain``); nothing here reads data or
writes final artifacts. Console output is ``progress.EpochReport``'s, not the Trainer's.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import torch
from transformers import EarlyStoppingCallback, PrinterCallback, Trainer, TrainerCallback, TrainingArguments
from transformers.integrations import TensorBoardCallback

from .progress import EpochReport

log = logging.getLogger(__name__)

# A checkpoint is complete once trainer_state.json is there: the Trainer writes it after the
# model, optimizer, scheduler and RNG state, so a kill mid-save leaves a folder without it.
_CHECKPOINT_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt")


def last_complete_checkpoint(run_dir: Path) -> str | None:
    """Newest ``checkpoint-N`` folder that holds every file a resume needs, else None."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None
    found = []
    for path in run_dir.glob("checkpoint-*"):
        match = re.fullmatch(r"checkpoint-(\d+)", path.name)
        if match and path.is_dir() and all((path / f).exists() for f in _CHECKPOINT_FILES):
            found.append((int(match.group(1)), path))
    if not found:
        return None
    return str(max(found)[1])


class SSLTrainer(Trainer):
    """Reports the reconstruction loss on the validation split as ``eval_mse``.

    Early stopping and best-model selection read ``eval_mse``; it is added inside the
    evaluation loop so the logs, TensorBoard and every callback see it.
    """

    def evaluation_loop(self, *args, **kwargs):
        output = super().evaluation_loop(*args, **kwargs)
        prefix = kwargs.get("metric_key_prefix", args[4] if len(args) > 4 else "eval")
        loss_key = f"{prefix}_loss"
        if loss_key in output.metrics:
            output.metrics[f"{prefix}_mse"] = output.metrics[loss_key]
        return output


def collate(batch: list[dict]) -> dict:
    # return_loss=True makes the Trainer compute the loss in evaluation although the
    # self-supervised model takes no labels.
    return {"input_values": torch.stack([b["input_values"] for b in batch]), "return_loss": True}


def _precision_flags(precision: str) -> dict:
    cuda = torch.cuda.is_available()
    if precision == "auto":
        if not cuda:
            return {}
        return {"bf16": True} if torch.cuda.is_bf16_supported() else {"fp16": True}
    if precision in ("fp16", "bf16") and not cuda:
        log.warning("--precision %s needs a GPU; training in fp32", precision)
        return {}
    return {precision: True} if precision in ("fp16", "bf16") else {}


def _ddp_backend() -> str | None:
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
    return "gloo" if launched and not torch.cuda.is_available() else None


class MethodStepCallback(TrainerCallback):
    """After each optimizer step, let the SSL method update its EMA teacher (``after_optimizer_step``).

    The step and total come from the Trainer state, so a resumed run continues the same decay schedule.
    """

    def on_step_end(self, args, state, control, model=None, **kwargs):
        hook = getattr(model, "after_optimizer_step", None)
        if hook is not None:
            hook(state.global_step, state.max_steps)


def training_arguments(cfg, run_dir: Path, selects_best: bool = True) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(run_dir),
        learning_rate=cfg.lr,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        gradient_accumulation_steps=cfg.grad_accum,
        warmup_steps=cfg.warmup_ratio,  # a float < 1 is a ratio of all steps in transformers 5
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_strategy="steps",
        logging_steps=cfg.logging_steps,
        save_total_limit=cfg.save_total_limit,
        load_best_model_at_end=selects_best,
        # BatchNorm (byol's projector) cannot train on a last batch of one clip.
        dataloader_drop_last=cfg.method == "byol",
        metric_for_best_model="eval_mse",
        greater_is_better=False,
        prediction_loss_only=True,
        dataloader_num_workers=cfg.workers,
        dataloader_pin_memory=torch.cuda.is_available(),
        # Pinned batches only overlap with compute when the host->device copy is non-blocking.
        accelerator_config={"non_blocking": torch.cuda.is_available()},
        # The NaN/Inf loss filter reads the loss on the host every micro-step: a device sync.
        logging_nan_inf_filter=not torch.cuda.is_available(),
        dataloader_persistent_workers=cfg.workers > 0,
        seed=cfg.seed,
        report_to="none",
        disable_tqdm=True,  # progress.EpochReport shows one bar and one line per epoch instead
        torch_compile=cfg.compile,
        remove_unused_columns=False,
        label_names=[],
        ddp_find_unused_parameters=False,
        # Without a GPU, accelerate only treats a torchrun launch as multi-process (gloo) when
        # told it runs on the CPU; otherwise each process would train alone.
        use_cpu=not torch.cuda.is_available(),
        ddp_backend=_ddp_backend(),
        **_precision_flags(cfg.precision),
    )


def build_trainer(cfg, model, cache, train_idx, val_idx, run_dir: Path) -> SSLTrainer:
    from torch.utils.tensorboard import SummaryWriter

    from ..data.features import FeatureDataset

    selects_best = getattr(model, "selects_best", True)
    args = training_arguments(cfg, run_dir, selects_best)
    eval_name = "eval_mse" if cfg.method == "reconstruct" else "eval loss"
    callbacks: list = [MethodStepCallback(), EpochReport(eval_name)]
    if selects_best:  # EMA-target methods have no comparable eval loss across epochs: train to the end
        callbacks.append(
            EarlyStoppingCallback(early_stopping_patience=cfg.patience, early_stopping_threshold=cfg.threshold)
        )
    if args.process_index == 0:
        callbacks.append(TensorBoardCallback(SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))))
    trainer = SSLTrainer(
        model=model,
        args=args,
        train_dataset=FeatureDataset(cache, train_idx),
        eval_dataset=FeatureDataset(cache, val_idx),
        data_collator=collate,
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # it prints every log dictionary to stdout
    return trainer
