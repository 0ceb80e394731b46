"""Final evaluation of a pretraining (``mosquito-ssl pretrain``), written to ``metrics.json``.

A method whose output is a spectrogram (reconstruct) is scored by its validation MSE against the
mean-spectrogram baseline, which predicts, for every validation clip, the mean training
spectrogram: a model that learned something reconstructs clearly better than that. Other methods
report their validation loss; ``metrics.json`` names it (``loss_name``, the registry's).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..model import methods


def mean_spectrogram(features: np.ndarray, idx: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Mean (T, F) spectrogram over ``idx``, read in chunks so a memmap never loads whole."""
    total = np.zeros(features.shape[1:], dtype=np.float64)
    for start in range(0, len(idx), chunk):
        total += features[np.sort(idx[start : start + chunk])].sum(axis=0)
    return (total / max(len(idx), 1)).astype(np.float32)


@torch.no_grad()
def baseline_and_final_mse(model, cache, train_idx, val_idx, batch_size: int) -> dict:
    mean = torch.from_numpy(mean_spectrogram(cache.features, np.asarray(train_idx)))
    model.eval()
    device = next(model.parameters()).device
    sums = {"model_all": 0.0, "model_masked": 0.0, "base_all": 0.0, "base_masked": 0.0}
    cells = {"all": 0, "masked": 0}
    val_idx = np.sort(np.asarray(val_idx))
    for start in range(0, len(val_idx), batch_size):
        batch = torch.from_numpy(np.array(cache.features[val_idx[start : start + batch_size]]))
        out = model(batch.to(device))
        recon, mask = out.reconstruction.float().cpu(), out.mask.cpu()
        model_err, base_err = (recon - batch) ** 2, (mean - batch) ** 2
        sums["model_all"] += model_err.sum().item()
        sums["base_all"] += base_err.sum().item()
        sums["model_masked"] += model_err[mask].sum().item()
        sums["base_masked"] += base_err[mask].sum().item()
        cells["all"] += batch.numel()
        cells["masked"] += int(mask.sum())
    masked = max(cells["masked"], 1)
    return {
        "val_mse": sums["model_all"] / cells["all"],
        "val_mse_mean_baseline": sums["base_all"] / cells["all"],
        "val_mse_masked": sums["model_masked"] / masked if cells["masked"] else None,
        "val_mse_masked_mean_baseline": sums["base_masked"] / masked if cells["masked"] else None,
        "val_clips": len(val_idx),
        "train_clips": len(train_idx),
    }


@torch.no_grad()
def final_val_loss(model, cache, train_idx, val_idx, batch_size: int) -> dict:
    """Mean validation loss of any SSL method (fixed eval masks/views), clip-weighted."""
    model.eval()
    device = next(model.parameters()).device
    total, val_idx = 0.0, np.sort(np.asarray(val_idx))
    for start in range(0, len(val_idx), batch_size):
        batch = torch.from_numpy(np.array(cache.features[val_idx[start : start + batch_size]]))
        total += float(model(batch.to(device)).loss) * len(batch)
    return {"val_loss": total / max(len(val_idx), 1), "val_clips": len(val_idx), "train_clips": len(train_idx)}


def final_metrics(method: str, model, cache, train_idx, val_idx, batch_size: int) -> dict[str, Any]:
    """The method's final validation metrics; a method that outputs spectrograms also gets the
    mean-spectrogram baseline (``mean_baseline`` in ``model/methods.py``)."""
    entry = methods.get(method)
    if entry.mean_baseline:
        metrics = baseline_and_final_mse(model, cache, train_idx, val_idx, batch_size)
    else:
        metrics = final_val_loss(model, cache, train_idx, val_idx, batch_size)
    return {**metrics, "method": method, "loss_name": entry.loss_name}


def result_line(metrics: dict[str, Any]) -> str:
    """One readable line of the final metrics for the log."""
    if "val_mse_mean_baseline" in metrics:
        return (
            f"validation MSE {metrics['val_mse']:.4f} vs mean-spectrogram baseline "
            f"{metrics['val_mse_mean_baseline']:.4f}"
        )
    return f"{metrics['method']} validation {metrics['loss_name']} {metrics['val_loss']:.4f}"
