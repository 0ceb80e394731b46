"""``run_speed``: time every pipeline, embedding extraction and the matmul peak; one flat dict.

    mosquito-ssl benchmarks speed --preset base --batch 8 --json

Every pipeline (``pipelines.PIPELINES``) trains the same preset at the same batch size on the
same synthetic wav clips, and is measured into the same fields, ``<name>_clips_per_s``,
``<name>_gflops``, ``<name>_fraction_of_peak``, ``<name>_input_shape``, ``<name>_step_s``...;
``embed_*`` is the probe's embedding pass. FLOP rates are the analytic counts
(``model/flops.py``) over the measured fp32 matmul peak. ``--equal-memory`` also times each
pipeline whose step holds fewer activations per clip than ``reconstruct``'s at the batch that
fills the same activation memory, as ``<name>_equal_memory_*``.
"""

from __future__ import annotations

import math
import os
import resource
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ..model.flops import TRAIN_FACTOR, encoder_flops
from ..model.presets import check_preset
from .machine import peak_gflops, physical_cores, pick_device, reuse_freed_memory
from .memory import memory_footprint
from .pipelines import BASELINE, MEMORY_REFERENCE, PIPELINES, Pipeline
from .timing import time_embedding, time_training


@dataclass(frozen=True)
class Measurement:
    """One timed loop and the FLOPs one clip of it costs."""

    timing: dict[str, Any]
    flops_per_clip: int


@dataclass(frozen=True)
class _Data:
    paths: list[str]  # the synthetic wav clips
    cache: Any  # their FeatureCache (100 frames)


def _check(preset: str, warmup: int, memory_clips: int, **counts: int) -> None:
    check_preset(preset)
    bad = [name.replace("_", "-") for name, value in counts.items() if value < 1]
    if bad:
        raise ConfigError(f"--{', --'.join(bad)}: counts must be >= 1")
    if warmup < 0 or memory_clips < 0:
        raise ConfigError("--warmup and --memory-clips must be >= 0")


def _clips(folder: Path, n: int) -> _Data:
    from ..data.features import FeatureSettings, build_features
    from ..data.manifest import read_dataset
    from ..data.synthetic import synthesize

    synthesize(folder / "wav", recordings_per_species=1, clips_per_recording=math.ceil(n / 4), seed=0)
    dataset = read_dataset(folder / "wav")
    cache = build_features(dataset, FeatureSettings(), cache_dir=folder / "cache", progress=False)
    return _Data([i.path for i in dataset.items], cache)


def _measure(
    p: Pipeline, preset: str, data: _Data, batch: int, warmup: int, steps: int, dev: torch.device
) -> Measurement:
    from ..data.features import FeatureDataset
    from .original import OriginalPipelineClips

    model = p.build(preset)
    # (clips repeat when a batch is larger than the set: a step needs one full batch)
    rows = np.arange(max(len(data.cache), batch)) % len(data.cache)
    dataset = OriginalPipelineClips(data.paths) if p.reads == "audio" else FeatureDataset(data.cache, rows)
    timing = time_training(model, dataset, batch, warmup, steps, dev, fused=p.fused_adamw)
    flops = p.step_flops(model) if p.step_flops else TRAIN_FACTOR * p.forward_flops(model)
    return Measurement(timing, flops)


def _measure_embedding(preset: str, data: _Data, batch: int, warmup: int, steps: int, dev: torch.device) -> Measurement:
    from ..model.encoder import build_encoder
    from ..model.flops import ast_shape

    encoder = build_encoder(preset, features=data.cache.settings)
    timing = time_embedding(encoder, data.cache.features, batch, warmup, steps, dev)
    return Measurement(timing, encoder_flops(ast_shape(encoder.config)))  # one forward, no backward


def run_speed(
    preset: str = "base",
    batch: int = 8,
    steps: int = 8,
    original_steps: int = 2,
    warmup: int = 1,
    embed_batch: int = 64,
    embed_steps: int = 4,
    memory_clips: int = 0,
    device: str | None = None,
    peak_n: int = 4096,
    equal_memory: bool = False,
) -> dict[str, Any]:
    """Measure every pipeline, embedding extraction and the matmul peak; return one flat dict."""
    counts = dict(batch=batch, steps=steps, original_steps=original_steps, embed_batch=embed_batch)
    _check(preset, warmup, memory_clips, **counts, embed_steps=embed_steps)
    if equal_memory and warmup < 1:
        raise ConfigError("--equal-memory measures activations on a warm-up step: use --warmup 1 or more")
    dev = pick_device(device)
    threads = physical_cores()
    torch.set_num_threads(threads)  # one BLAS thread per physical core; SMT siblings only contend
    reused = reuse_freed_memory()  # as every Trainer does (training.make_trainer)
    torch.manual_seed(0)
    measured: dict[str, Measurement] = {}
    with tempfile.TemporaryDirectory(prefix="mosquito-speed-") as tmp:
        data = _clips(Path(tmp), max(2 * batch, 16))
        load = os.getloadavg()[0]
        peak = peak_gflops(dev, peak_n)
        for p in PIPELINES:  # one model alive at a time
            measured[p.name] = _measure(p, preset, data, batch, warmup, original_steps if p.slow else steps, dev)
        if equal_memory:
            measured.update(_equal_memory(measured, preset, data, batch, warmup, steps, dev))
        measured["embed"] = _measure_embedding(preset, data, embed_batch, warmup, embed_steps, dev)
        # Peak again at the end: on a shared machine the best of both is the closer to the truth.
        peak = max(peak, peak_gflops(dev, peak_n))
        mem = memory_footprint(memory_clips, Path(tmp) / "big", batch) if memory_clips else {}
    head = {
        "preset": preset,
        "batch": batch,
        "device": str(dev),
        "threads": threads,
        "torch_version": torch.__version__,
        "reuse_freed_memory": reused,
        "peak_gflops": peak,
        "pipelines": [p.name for p in PIPELINES],
        "equal_memory": [name for name in measured if name.endswith(EQUAL_MEMORY)],
        "embed_batch": embed_batch,
    }
    loads = {"load_avg_start": load, "load_avg_end": os.getloadavg()[0]}
    return {**head, **result_fields(measured, peak), **loads, **mem}


EQUAL_MEMORY = "_equal_memory"  # suffix of a pipeline timed at the reference's activation memory


def equal_memory_batch(measured: dict[str, Measurement], name: str, batch: int) -> int:
    """The batch at which ``name``'s activations fill what the reference's hold at ``batch``."""
    ref = measured[MEMORY_REFERENCE].timing.get("activation_mb_per_clip")
    own = measured[name].timing.get("activation_mb_per_clip")
    return max(batch, int(batch * ref / own)) if ref and own else batch


def _equal_memory(
    measured: dict[str, Measurement], preset: str, data: _Data, batch: int, warmup: int, steps: int, dev: torch.device
) -> dict[str, Measurement]:
    """Every cache pipeline lighter than the reference, timed again at its equal-memory batch."""
    out = {}
    for p in PIPELINES:
        bigger = equal_memory_batch(measured, p.name, batch)
        if p.reads == "cache" and p.name != MEMORY_REFERENCE and bigger > batch:
            out[p.name + EQUAL_MEMORY] = _measure(p, preset, data, bigger, warmup, steps, dev)
    return out


def result_fields(measured: dict[str, Measurement], peak: float) -> dict[str, Any]:
    """``<name>_*`` fields of every measurement, ``<name>_speedup`` against the baseline pipeline."""
    out: dict[str, Any] = {}
    base = measured.get(BASELINE)
    for name, m in measured.items():
        t = m.timing
        rate = m.flops_per_clip * t["clips_per_s"] / 1e9
        out.update(
            {
                f"{name}_batch": t["input_shape"][0],
                f"{name}_clips_per_s": t["clips_per_s"],
                f"{name}_gflops": rate,
                f"{name}_fraction_of_peak": rate / peak,
                f"{name}_best_fraction_of_peak": m.flops_per_clip * t["best_clips_per_s"] / 1e9 / peak,
                f"{name}_gflop_per_clip": m.flops_per_clip / 1e9,
                f"{name}_input_shape": t["input_shape"],
                f"{name}_step_s": t["step_s"],
            }
        )
        if "phase_s" in t:  # mean seconds per step in data / forward+backward / clip+AdamW
            out[f"{name}_phase_s"] = t["phase_s"]
        if "activation_mb_per_clip" in t:  # saved for the backward (speed/memory.py ActivationMeter)
            out[f"{name}_activation_mb_per_clip"] = t["activation_mb_per_clip"]
        if base is not None and name not in (BASELINE, "embed"):
            out[f"{name}_speedup"] = t["clips_per_s"] / base.timing["clips_per_s"]
            # best single step: the figure least disturbed by other processes on a shared machine
            out[f"{name}_best_speedup"] = t["best_clips_per_s"] / base.timing["best_clips_per_s"]
    if "reconstruct_speedup" in out:  # the headline: this toolkit's training against the original
        out["speedup"], out["best_speedup"] = out["reconstruct_speedup"], out["reconstruct_best_speedup"]
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out
