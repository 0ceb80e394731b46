"""What pretraining shows while it runs: one progress bar and one readable line per epoch.

    mosquito-ssl pretrain data/synth --preset tiny --epochs 10

The Trainer runs with ``disable_tqdm=True`` and without its ``PrinterCallback`` (which prints
every log dictionary; ``mosquito_ssl.training``); ``EpochReport`` takes their place::

    pretrain  38%|███▊      | 30/80 [00:12<00:20, 2.41step/s]        (only when stderr is a terminal)
    12:00:01 INFO mosquito_ssl.pretrain.progress: epoch 3/10: train loss 0.1012, eval loss 0.0998 (best 0.0995)

The value is the Trainer's ``eval_loss`` (the one checkpoint selection reads); the caller
names it for the method. The raw dictionaries go to the DEBUG log (``mosquito-ssl -v
pretrain ...``). With stderr not a terminal (CI, ``> log 2>&1``, SLURM) the bar is off (tqdm
``disable=None``), so a log file gets one line per epoch, not one per progress update.
"""

from __future__ import annotations

import logging
from typing import Any

from transformers import TrainerCallback

log = logging.getLogger(__name__)


class EpochReport(TrainerCallback):
    """A tqdm bar over optimizer steps (with ETA) and one INFO line per evaluated epoch.

    The epoch's train loss is the step-weighted mean of the Trainer's ``loss`` logs since the
    last epoch line; ``on_epoch_end`` asks for a log so the steps after the last
    ``logging_steps`` multiple count too.
    """

    def __init__(self, label: str) -> None:
        self.label = label  # what the epoch line calls the validation loss (``eval_loss``)
        self.bar: Any = None
        self.best: float | None = None
        self._loss_sum = 0.0
        self._loss_steps = 0
        self._last_step = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self._last_step = state.global_step
        self.best = state.best_metric  # a resumed run keeps its best so far
        if state.is_world_process_zero:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=state.max_steps,
                initial=state.global_step,
                desc="pretrain",
                unit="step",
                disable=None,  # off when stderr is not a terminal
                leave=False,
                dynamic_ncols=True,
            )

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_epoch_end(self, args, state, control, **kwargs):
        control.should_log = True  # log the loss of the epoch's last steps before evaluating
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" in logs:
            steps = max(state.global_step - self._last_step, 1)
            self._loss_sum += float(logs["loss"]) * steps
            self._loss_steps += steps
            self._last_step = state.global_step

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        value = (metrics or {}).get("eval_loss")
        if value is None:
            return
        self.best = value if self.best is None else min(self.best, value)
        train = self._loss_sum / self._loss_steps if self._loss_steps else None
        self._loss_sum, self._loss_steps = 0.0, 0
        if state.is_world_process_zero:
            log.info(epoch_line(state.epoch, state.num_train_epochs, train, self.label, value, self.best))

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def epoch_line(epoch: float | None, epochs: int, train: float | None, label: str, value: float, best: float) -> str:
    """``epoch 3/10: train loss 0.1012, validation masked-patch MSE 0.0998 (best 0.0995)``."""
    train_text = "n/a" if train is None else f"{train:.4g}"
    return f"epoch {round(epoch or 0)}/{epochs}: train loss {train_text}, {label} {value:.4g} (best {best:.4g})"
