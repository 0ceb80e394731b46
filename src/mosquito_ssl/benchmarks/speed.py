"""Training and embedding throughput: the seed-style pipeline against this toolkit's, one process.

Owns ``run_speed`` (what ``mosquito-ssl benchmarks speed`` prints) and the seed-style baseline
it measures against. Both pipelines train the same preset at the same batch size on the same
synthetic wav clips; a step is data + forward + backward + gradient clipping + AdamW::

    mosquito-ssl benchmarks speed --preset base --batch 8 --json

(a) seed:  per item ``librosa.load`` + ``ASTFeatureExtractor`` at its default 1024 frames,
    per-example SpecAugment masks in a Python loop, AST at 1024 frames (1214 tokens), Conv1d
    decoder over the token sequence, AdamW with its CPU default (per-tensor loop).
(b) ours:  ``build_features`` cache read through the memmap ``FeatureDataset`` at 100 frames
    (110 tokens), batched ``sample_masks`` inside ``ASTSSL``, fused AdamW (the Trainer default).
FLOP rates come from ``flops.py`` (analytic counts) over a measured fp32 matmul peak.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import flops
from .flops import peak_gflops, physical_cores, pick_device, sync

SEED_FRAMES = 1024  # ASTFeatureExtractor's default max_length (10.24 s)
DECODER_DIM = 256


def _autocast(device: torch.device):
    if device.type != "cuda":
        return contextlib.nullcontext()  # CPU: fp32, the precision the targets are stated in
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


# ---------------------------------------------------------------- the seed-style pipeline
class SeedClips(torch.utils.data.Dataset):
    """Decode and featurise every clip on every access, padded to 1024 frames (the seed)."""

    def __init__(self, paths: list[str], sample_rate: int = 16000) -> None:
        import warnings

        from transformers import ASTFeatureExtractor

        self.paths, self.sample_rate = paths, sample_rate
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            self.extractor = ASTFeatureExtractor()  # defaults: 128 bins, 1024 frames

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        import librosa

        wave, _ = librosa.load(self.paths[i], sr=self.sample_rate)
        feats = self.extractor(wave, sampling_rate=self.sample_rate, return_tensors="pt")
        return {"input_values": feats["input_values"][0]}


def seed_masks(x: torch.Tensor, mask) -> torch.Tensor:
    """Masked copy of ``x`` (B, T, F), one example and one band at a time, as the seed's
    torchaudio ``TimeMasking``/``FrequencyMasking`` (width ~ U{0..W}, start ~ U{0..L-w})."""
    out = x.clone()
    for example in out:
        for axis, n, width in ((0, mask.time_masks, mask.time_width), (1, mask.freq_masks, mask.freq_width)):
            length = example.shape[axis]
            for _ in range(n):
                w = int(torch.randint(0, min(width, length) + 1, ()))
                s = int(torch.randint(0, length - w + 1, ()))
                example.narrow(axis, s, w).zero_()
    return out


class SeedSSL(nn.Module):
    """The seed's AST_SSL: Conv1d over the token sequence, stretched onto the frames."""

    seed_style = True

    def __init__(self, encoder, mask, decoder_dim: int = DECODER_DIM) -> None:
        super().__init__()
        self.encoder, self.mask, self.decoder_dim = encoder, mask, decoder_dim
        cfg = encoder.config
        self.decoder = nn.Sequential(
            nn.Conv1d(cfg.hidden_size, decoder_dim, 3, padding=1),
            nn.GELU(),
            nn.Conv1d(decoder_dim, cfg.num_mel_bins, 3, padding=1),
        )

    def forward(self, input_values: torch.Tensor):
        masked = seed_masks(input_values, self.mask)
        tokens = self.encoder(input_values=masked).last_hidden_state  # (B, S, H), CLS/dist kept
        decoded = self.decoder(tokens.transpose(1, 2))
        decoded = F.interpolate(decoded, size=input_values.shape[1], mode="linear")
        return {"loss": F.mse_loss(decoded.transpose(1, 2), input_values)}


# ---------------------------------------------------------------- timing
def _stack(batch: list[dict]) -> torch.Tensor:
    return torch.stack([b["input_values"] for b in batch])


def _loader(dataset, batch: int, device: torch.device):
    cuda = device.type == "cuda"  # pinned pages let the copy overlap compute
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch, shuffle=True, drop_last=True, collate_fn=_stack, pin_memory=cuda
    )


def time_training(
    model, dataset, batch: int, warmup: int, steps: int, device: torch.device, fused: bool
) -> dict[str, Any]:
    """Clips/s of full training steps (data included) after ``warmup`` untimed steps."""
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, fused=True) if fused else torch.optim.AdamW(params, lr=1e-4)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and not torch.cuda.is_bf16_supported())
    batches = itertools.chain.from_iterable(itertools.repeat(_loader(dataset, batch, device)))
    shape, times, phases = None, [], np.zeros(3)
    for i in range(warmup + steps):
        sync(device)
        t0 = time.perf_counter()
        x = next(batches).to(device, non_blocking=True)
        shape = tuple(x.shape)
        t1 = time.perf_counter()  # (on CUDA the copy may still run: it overlaps the forward)
        with _autocast(device):
            loss = model(input_values=x)["loss"]
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        sync(device)
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)  # the Trainer's max_grad_norm
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            phases += (t1 - t0, t2 - t1, time.perf_counter() - t2)
    return {
        "clips_per_s": batch * len(times) / sum(times),
        "best_clips_per_s": batch / min(times),
        "step_s": times,
        "input_shape": list(shape),
        "phase_s": dict(zip(("data", "forward_backward", "optimizer"), (phases / steps).tolist())),
    }


def time_embedding(
    encoder, features: np.ndarray, batch: int, warmup: int, steps: int, device: torch.device
) -> dict[str, Any]:
    """Clips/s of the probe's embedding pass: frozen encoder, every hidden state, all poolings."""
    from ..probe.embeddings import pool

    encoder.to(device).eval().requires_grad_(False)
    n, times = len(features), []
    with torch.inference_mode():
        for i in range(warmup + steps):
            idx = np.arange(i * batch, (i + 1) * batch) % n
            sync(device)
            start = time.perf_counter()
            x = torch.from_numpy(features[np.sort(idx)]).to(device, non_blocking=True)
            with _autocast(device):
                out = encoder(x, output_hidden_states=True)
                pooled = pool(torch.stack(out.hidden_states, dim=1), out.last_hidden_state)
            _ = {k: v.float().cpu() for k, v in pooled.items()}
            sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return {
        "clips_per_s": batch * len(times) / sum(times),
        "best_clips_per_s": batch / min(times),
        "step_s": times,
        "input_shape": [batch, *features.shape[1:]],
    }


# ---------------------------------------------------------------- the benchmark
def _clips(folder: Path, n: int):
    from ..data.manifest import read_dataset
    from ..data.synthetic import synthesize

    per_species = math.ceil(n / 4)
    synthesize(folder / "wav", recordings_per_species=1, clips_per_recording=per_species, seed=0)
    return read_dataset(folder / "wav")


def _models(preset: str):
    from ..data.features import FeatureSettings
    from ..model.encoder import build_encoder
    from ..model.masking import MaskSettings
    from ..model.ssl import ASTSSL

    seed_features = FeatureSettings(clip_seconds=SEED_FRAMES / 100)
    seed = SeedSSL(build_encoder(preset, features=seed_features), MaskSettings())
    ours = ASTSSL(build_encoder(preset, features=FeatureSettings()), MaskSettings())
    return seed, ours


def _check(preset: str, warmup: int, memory_clips: int, **counts: int) -> None:
    from ..errors import ConfigError
    from ..model.encoder import PRESETS

    if preset not in PRESETS:
        raise ConfigError(f"--preset {preset!r} is not valid: use one of {', '.join(PRESETS)}")
    bad = [name.replace("_", "-") for name, value in counts.items() if value < 1]
    if bad or warmup < 0 or memory_clips < 0:
        raise ConfigError(
            f"--{', --'.join(bad or ['warmup/--memory-clips'])}: counts must be >= 1 (--warmup and --memory-clips >= 0)"
        )


def run_speed(
    preset: str = "base",
    batch: int = 8,
    steps: int = 8,
    seed_steps: int = 2,
    warmup: int = 1,
    embed_batch: int = 64,
    embed_steps: int = 4,
    memory_clips: int = 0,
    device: str | None = None,
    peak_n: int = 4096,
) -> dict[str, Any]:
    """Measure both pipelines, embedding extraction and the matmul peak; return one flat dict."""
    _check(
        preset,
        warmup,
        memory_clips,
        batch=batch,
        steps=steps,
        seed_steps=seed_steps,
        embed_batch=embed_batch,
        embed_steps=embed_steps,
    )
    dev = pick_device(device)
    threads = physical_cores()
    torch.set_num_threads(threads)  # one BLAS thread per physical core; SMT siblings only contend
    torch.manual_seed(0)
    from ..data.features import FeatureSettings, build_features

    with tempfile.TemporaryDirectory(prefix="mosquito-speed-") as tmp:
        dataset = _clips(Path(tmp), max(2 * batch, 16))
        cache = build_features(dataset, FeatureSettings(), cache_dir=Path(tmp) / "cache", progress=False)
        from ..data.features import FeatureDataset

        seed_model, ours_model = _models(preset)
        load = os.getloadavg()[0]
        peak = peak_gflops(dev, peak_n)
        seed = time_training(
            seed_model, SeedClips([i.path for i in dataset.items]), batch, warmup, seed_steps, dev, fused=False
        )
        seed_flops = flops.ssl_forward_flops(seed_model)
        del seed_model
        ours = time_training(ours_model, FeatureDataset(cache), batch, warmup, steps, dev, fused=True)
        embed = time_embedding(ours_model.encoder, cache.features, embed_batch, warmup, embed_steps, dev)
        ours_flops, enc_flops = (
            flops.ssl_forward_flops(ours_model),
            flops.encoder_flops(flops.ast_shape(ours_model.encoder.config)),
        )
        # Peak again at the end: on a shared machine the best of both is the closer to the truth.
        peak = max(peak, peak_gflops(dev, peak_n))
        mem = memory_footprint(memory_clips, Path(tmp) / "big", batch) if memory_clips else {}
    loads = {"load_avg_start": load, "load_avg_end": os.getloadavg()[0]}
    return _result(
        preset, batch, dev, threads, peak, seed, ours, embed, seed_flops, ours_flops, enc_flops, {**loads, **mem}
    )


def _result(
    preset, batch, dev, threads, peak, seed, ours, embed, seed_flops, ours_flops, enc_flops, extra
) -> dict[str, Any]:
    out = {
        "preset": preset,
        "batch": batch,
        "device": str(dev),
        "threads": threads,
        "torch_version": torch.__version__,
        "peak_gflops": peak,
        "speedup": ours["clips_per_s"] / seed["clips_per_s"],
        # best single step: the figure least disturbed by other processes on a shared machine
        "best_speedup": ours["best_clips_per_s"] / seed["best_clips_per_s"],
        "embed_batch": embed["input_shape"][0],
    }
    per_clip = {
        "seed": flops.TRAIN_FACTOR * seed_flops,
        "ours": flops.TRAIN_FACTOR * ours_flops,
        "embed": enc_flops,
    }  # training steps count 3 forwards, embedding one
    for name, m in (("seed", seed), ("ours", ours), ("embed", embed)):
        rate = per_clip[name] * m["clips_per_s"] / 1e9
        out.update(
            {
                f"{name}_clips_per_s": m["clips_per_s"],
                f"{name}_gflops": rate,
                f"{name}_fraction_of_peak": rate / peak,
                f"{name}_best_fraction_of_peak": per_clip[name] * m["best_clips_per_s"] / 1e9 / peak,
                f"{name}_gflop_per_clip": per_clip[name] / 1e9,
                f"{name}_input_shape": m["input_shape"],
                f"{name}_step_s": m["step_s"],
            }
        )
        if "phase_s" in m:  # mean seconds per step in data / forward+backward / clip+AdamW
            out[f"{name}_phase_s"] = m["phase_s"]
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {**out, **extra}


# ---------------------------------------------------------------- memory of a large cache
def _status_mb() -> dict[str, float]:
    """Resident anonymous (private heap) and file-backed (memmap page cache) memory, MB."""
    out = {"RssAnon": 0.0, "RssFile": 0.0}
    if not Path("/proc/self/status").is_file():  # not Linux: total RSS, unsplit
        import psutil

        return {**out, "RssAnon": psutil.Process().memory_info().rss / 2**20}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) / 1024
    return out


def memory_footprint(n_clips: int, folder: Path, batch: int, frames: int = 100, bins: int = 128) -> dict:
    """Iterate a shuffled DataLoader over an ``n_clips`` feature memmap; report peak RSS parts.

    The cache file is written directly in ``features.py``'s layout (no audio is decoded).
    File-backed pages of the memmap count in RSS but belong to the page cache (the kernel drops
    them under pressure); the anonymous part is what the process itself holds.
    """
    from ..data.features import FeatureCache, FeatureDataset
    from ..data.manifest import SkipLog

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "features.npy"
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n_clips, frames, bins))
    chunk = np.random.default_rng(0).standard_normal((1024, frames, bins), dtype=np.float32)
    for start in range(0, n_clips, len(chunk)):  # real pages on disk, not a sparse file
        out[start : start + len(chunk)] = chunk[: n_clips - start]
    out.flush()
    del out
    cache = FeatureCache(np.load(path, mmap_mode="r"), [], SkipLog(), None, folder)
    data = FeatureDataset(cache, np.arange(n_clips))
    base = _status_mb()
    peak = dict(base)
    for i, _ in enumerate(torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True, collate_fn=_stack)):
        if i % 64 == 0:
            peak = {k: max(v, peak[k]) for k, v in _status_mb().items()}
    return {
        "memory_clips": n_clips,
        "memory_cache_mb": path.stat().st_size / 2**20,
        "memory_anon_growth_mb": peak["RssAnon"] - base["RssAnon"],
        "memory_file_growth_mb": peak["RssFile"] - base["RssFile"],
        "memory_peak_anon_mb": peak["RssAnon"],
        "memory_peak_file_mb": peak["RssFile"],
    }
