"""The one Hugging Face ``Trainer`` policy of every stage that trains a network.

    mosquito-ssl pretrain data/synth --preset tiny --epochs 20                    # pretrain/trainer.py
    mosquito-ssl probe finetune data/synth --encoder runs/pretrain-tiny --folds 5  # probe/finetune.py

Owns ``training_arguments`` (``TrainingArguments`` with the shared policy: device, data loading,
precision, evaluation and checkpoints once per epoch, no reporting integrations, no tqdm; a
stage passes only what differs: schedule, checkpoint selection, logging cadence, labels) and
``make_trainer`` (a ``Trainer`` whose log dictionaries go to the DEBUG log instead of stdout,
with early stopping on the stage's best-model metric). Stages never build ``TrainingArguments``
themselves.
"""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import Any

import torch
from transformers import EarlyStoppingCallback, PrinterCallback, Trainer, TrainerCallback, TrainingArguments

log = logging.getLogger(__name__)


def precision_flags(precision: str) -> dict[str, bool]:
    """``TrainingArguments`` flags for ``precision`` (``auto``: bf16 on a GPU that has it, else fp16)."""
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
    """``gloo`` for a multi-process launch (torchrun) without a GPU; else accelerate's default."""
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
    return "gloo" if launched and not torch.cuda.is_available() else None


def policy(
    output_dir: str | Path,
    *,
    lr: float,
    batch_size: int,
    epochs: float,
    seed: int,
    workers: int = 0,
    precision: str = "auto",
    select: bool = True,
) -> dict[str, Any]:
    """The ``TrainingArguments`` every stage shares, as keyword arguments.

    ``select``: evaluate and checkpoint once per epoch (the best epoch is kept); False for a
    run of a length already chosen (fine-tuning's refit on train + val), which has no validation.
    """
    cuda = torch.cuda.is_available()
    return dict(
        output_dir=str(output_dir),
        learning_rate=lr,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size,
        num_train_epochs=epochs,
        seed=seed,
        # Evaluated and checkpointed once per epoch: the best epoch is the one kept.
        eval_strategy="epoch" if select else "no",
        save_strategy="epoch" if select else "no",
        dataloader_num_workers=workers,
        dataloader_persistent_workers=workers > 0,
        dataloader_pin_memory=cuda,
        # Pinned batches only overlap with compute when the host->device copy is non-blocking.
        accelerator_config={"non_blocking": cuda},
        # The NaN/Inf loss filter reads the loss on the host every micro-step: a device sync.
        logging_nan_inf_filter=not cuda,
        # CUDA or the CPU, as every stage places its models (no MPS). Without a GPU, accelerate
        # only treats a torchrun launch as multi-process (gloo) when told it runs on the CPU.
        use_cpu=not cuda,
        ddp_backend=_ddp_backend(),
        report_to="none",
        disable_tqdm=True,  # each stage shows its own progress (pretrain/progress.py)
        remove_unused_columns=False,  # the models take input_values (and labels), nothing to drop
        **precision_flags(precision),
    )


def training_arguments(output_dir: str | Path, **kwargs: Any) -> TrainingArguments:
    """``TrainingArguments``: ``policy``'s arguments (lr, batch_size, epochs, seed, workers, precision, select)
    go to the shared policy, the rest are the stage's own ``TrainingArguments``.

    A stage cannot override the policy: a key in both is a ``TypeError`` (given twice).
    """
    own = inspect.signature(policy).parameters
    shared = policy(output_dir, **{k: kwargs.pop(k) for k in list(kwargs) if k in own})
    return TrainingArguments(**shared, **kwargs)


class DebugLog(TrainerCallback):
    """The Trainer's log dictionaries go to the DEBUG log (``mosquito-ssl -v ...``), not stdout."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero:
            log.debug("trainer log %s", logs)


def make_trainer(
    trainer_cls: type[Trainer] = Trainer,
    *,
    args: TrainingArguments,
    callbacks: list[TrainerCallback] | None = None,
    patience: int | None = None,
    threshold: float = 0.0,
    **kwargs: Any,
) -> Trainer:
    """``trainer_cls(args=args, ...)`` without ``PrinterCallback``, early-stopping when ``patience`` is given.

    Early stopping reads ``args.metric_for_best_model``: no improvement by more than
    ``threshold`` for ``patience`` evaluations stops training.
    """
    from .speed.machine import reuse_freed_memory

    reuse_freed_memory()  # each step's freed gradients/activations are reused, not page-faulted in again
    callbacks = [*(callbacks or []), DebugLog()]
    if patience is not None:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=patience, early_stopping_threshold=threshold))
    trainer = trainer_cls(args=args, callbacks=callbacks, **kwargs)
    trainer.remove_callback(PrinterCallback)  # it prints every log dictionary to stdout
    return trainer
