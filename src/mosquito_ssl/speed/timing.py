"""Timed loops: full training steps of one pipeline, and the probe's embedding pass.

A training step is data + forward + backward + gradient clipping + AdamW, as the Trainer runs
it; ``warmup`` untimed steps come first (the first one also measures the step's activation
memory). Each call returns clips/s over all timed steps, the best single step and the raw step
times::

    timing = time_training(model, dataset, batch=8, warmup=1, steps=8, device=dev, fused=True)
"""

from __future__ import annotations

import contextlib
import itertools
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from .machine import autocast, sync
from .memory import ActivationMeter


def stack(batch: list[dict]) -> torch.Tensor:
    return torch.stack([b["input_values"] for b in batch])


def _loader(dataset: torch.utils.data.Dataset, batch: int, device: torch.device) -> torch.utils.data.DataLoader:
    cuda = device.type == "cuda"  # pinned pages let the copy overlap compute
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch, shuffle=True, drop_last=True, collate_fn=stack, pin_memory=cuda
    )


def _rates(batch: int, times: list[float]) -> dict[str, Any]:
    return {"clips_per_s": batch * len(times) / sum(times), "best_clips_per_s": batch / min(times), "step_s": times}


def time_training(
    model: nn.Module,
    dataset: torch.utils.data.Dataset,
    batch: int,
    warmup: int,
    steps: int,
    device: torch.device,
    fused: bool,
) -> dict[str, Any]:
    """Clips/s of full training steps (data included) after ``warmup`` untimed steps."""
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, fused=True) if fused else torch.optim.AdamW(params, lr=1e-4)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and not torch.cuda.is_bf16_supported())
    batches = itertools.chain.from_iterable(itertools.repeat(_loader(dataset, batch, device)))
    shape: tuple[int, ...] = ()
    meter = ActivationMeter(model)  # on the first warm-up step: the hooks cost time
    times: list[float] = []
    phases = np.zeros(3)
    for i in range(warmup + steps):
        sync(device)
        t0 = time.perf_counter()
        x = next(batches).to(device, non_blocking=True)
        shape = tuple(x.shape)
        t1 = time.perf_counter()  # (on CUDA the copy may still run: it overlaps the forward)
        with autocast(device), meter if i == 0 and warmup else contextlib.nullcontext():
            loss = model(input_values=x)["loss"]
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        sync(device)
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)  # the Trainer's max_grad_norm
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        hook = getattr(model, "after_optimizer_step", None)
        if callable(hook):  # EMA teacher update, part of every step
            hook(i + 1, warmup + steps)
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            phases += (t1 - t0, t2 - t1, time.perf_counter() - t2)
    activations = {"activation_mb_per_clip": meter.nbytes / batch / 2**20} if warmup else {}
    return {
        **_rates(batch, times),
        **activations,
        "input_shape": list(shape),
        "phase_s": dict(zip(("data", "forward_backward", "optimizer"), (phases / steps).tolist(), strict=True)),
    }


def time_embedding(
    encoder: nn.Module, features: np.ndarray, batch: int, warmup: int, steps: int, device: torch.device
) -> dict[str, Any]:
    """Clips/s of the probe's embedding pass: frozen encoder, every hidden state, all poolings."""
    from ..model.presets import patch_grid
    from ..probe.embeddings import pool

    encoder.to(device).eval().requires_grad_(False)
    grid = patch_grid(encoder.config)
    n, times = len(features), []
    with torch.inference_mode():
        for i in range(warmup + steps):
            idx = np.arange(i * batch, (i + 1) * batch) % n
            sync(device)
            start = time.perf_counter()
            x = torch.from_numpy(features[np.sort(idx)]).to(device, non_blocking=True)
            with autocast(device):
                out = encoder(x, output_hidden_states=True)
                pooled = pool(torch.stack(out.hidden_states, dim=1), out.last_hidden_state, grid)
            _ = {k: v.float().cpu() for k, v in pooled.items()}
            sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return {**_rates(batch, times), "input_shape": [batch, *features.shape[1:]]}
