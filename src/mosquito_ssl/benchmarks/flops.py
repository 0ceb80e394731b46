"""FLOPs: analytic counts of the AST encoder and both SSL decoders, a FlopCounterMode check,
and the machine's measured fp32 matmul peak (with the device helpers timing needs).

Used by ``mosquito-ssl benchmarks speed`` (``benchmarks.speed``) to turn clips per second into
an achieved FLOP rate. A multiply-add is 2 FLOPs; only matmul-like work is counted (linear
layers, attention products, convolutions), as ``torch.utils.flop_counter`` does. Bias adds,
LayerNorm, GELU, softmax and the optimizer are memory-bound and left out: they cost time, not
FLOPs, which is exactly what the fraction of peak shows.

Per clip, with S tokens (2 + f_dim * t_dim), hidden H, MLP width I, L layers::

    layer     = 8*S*H^2 (Q, K, V, output projections) + 4*S^2*H (scores QK^T and weights @ V)
              + 4*S*H*I (MLP fc1 + fc2)
    encoder   = L * layer + 2 * f_dim*t_dim * H * 16*16 (patch-embedding conv, one input channel)
    ours dec  = 2*f_dim*t_dim*H*P (projector) + 2*t_dim*3*(f_dim*P*D + D*bins) (Conv1d, k=3)
    seed dec  = 2*S*3*(H*D + D*bins) (Conv1d over the whole token sequence, k=3)
    training  = 3 * forward (backward = grads w.r.t. activations + weights, 2x forward)

    python -c "from mosquito_ssl.benchmarks.flops import *; print(encoder_flops(preset_shape('base')))"
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

TRAIN_FACTOR = 3  # forward + backward (2x forward)


@dataclass(frozen=True)
class ASTShape:
    hidden: int
    layers: int
    intermediate: int
    f_dim: int
    t_dim: int
    patch: int = 16
    bins: int = 128

    @property
    def tokens(self) -> int:
        return 2 + self.f_dim * self.t_dim


def ast_shape(config) -> ASTShape:
    """Shape of an ``ASTConfig`` (patch grid as ``ASTEmbeddings.get_shape``)."""
    from ..model.encoder import patch_grid

    f_dim, t_dim = patch_grid(config)
    return ASTShape(
        config.hidden_size,
        config.num_hidden_layers,
        config.intermediate_size,
        f_dim,
        t_dim,
        config.patch_size,
        config.num_mel_bins,
    )


def preset_shape(preset: str, frames: int = 100, bins: int = 128) -> ASTShape:
    from ..model.encoder import PRESETS

    p = PRESETS[preset]
    grid = lambda n: (n - p["patch_size"]) // p["time_stride"] + 1  # noqa: E731
    return ASTShape(
        p["hidden_size"],
        p["num_hidden_layers"],
        p["intermediate_size"],
        grid(bins),
        grid(frames),
        p["patch_size"],
        bins,
    )


def encoder_flops(s: ASTShape) -> int:
    """Forward FLOPs of one clip through the AST encoder."""
    S, H, I = s.tokens, s.hidden, s.intermediate
    layer = 8 * S * H * H + 4 * S * S * H + 4 * S * H * I
    patch_embed = 2 * s.f_dim * s.t_dim * H * s.patch * s.patch
    return s.layers * layer + patch_embed


def ours_decoder_flops(s: ASTShape, proj_dim: int = 64, decoder_dim: int = 256) -> int:
    """Projector + Conv1d decoder of ``model.ssl.ASTSSL`` along the time-patch axis."""
    projector = 2 * s.f_dim * s.t_dim * s.hidden * proj_dim
    conv = 2 * s.t_dim * 3 * (s.f_dim * proj_dim * decoder_dim + decoder_dim * s.bins)
    return projector + conv


def seed_decoder_flops(s: ASTShape, decoder_dim: int = 256) -> int:
    """The seed's Conv1d decoder over the flattened token sequence (``speed.SeedSSL``)."""
    return 2 * s.tokens * 3 * (s.hidden * decoder_dim + decoder_dim * s.bins)


def ssl_forward_flops(model) -> int:
    """Forward FLOPs per clip of an ``ASTSSL`` (or the seed model: it has ``seed_style``)."""
    s = ast_shape(model.encoder.config)
    if getattr(model, "seed_style", False):
        return encoder_flops(s) + seed_decoder_flops(s, model.decoder_dim)
    return encoder_flops(s) + ours_decoder_flops(s, model.proj_dim, model.decoder_dim)


def _sdpa_cpu(query, key, value, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query, key, value)


def _sdpa_cpu_backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_backward_flop_count

    return sdpa_backward_flop_count(grad_out, query, key, value)


def flop_counter():
    """``FlopCounterMode`` that also counts the CPU flash-attention kernel SDPA dispatches to
    (torch 2.13 registers formulas for the CUDA kernels only, so CPU attention would read 0)."""
    from torch.utils.flop_counter import FlopCounterMode

    aten = torch.ops.aten
    mapping = {
        aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu,
        aten._scaled_dot_product_flash_attention_for_cpu_backward: _sdpa_cpu_backward,
    }
    return FlopCounterMode(display=False, custom_mapping=mapping)


def measured_flops(fn) -> int:
    """FLOPs ``fn()`` runs, as counted by ``flop_counter()``."""
    with flop_counter() as counter:
        fn()
    return counter.get_total_flops()


# ---------------------------------------------------------------- the machine
def physical_cores() -> int:
    import psutil

    return psutil.cpu_count(logical=False) or torch.get_num_threads()


def pick_device(device: str | None = None) -> torch.device:
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def sync(device: torch.device) -> None:
    if device.type == "cuda":  # kernels are asynchronous: time only finished work
        torch.cuda.synchronize(device)


def peak_gflops(device: torch.device, n: int = 4096, repeats: int = 5) -> float:
    """Best fp32 ``torch.mm`` rate of an n x n product (TF32 off: it is not fp32 work)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    out = torch.empty(n, n, device=device)
    best = math.inf
    old_tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        for i in range(repeats + 1):
            sync(device)
            start = time.perf_counter()
            torch.mm(a, b, out=out)
            sync(device)
            if i:  # the first product warms the allocator and the BLAS thread pool
                best = min(best, time.perf_counter() - start)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old_tf32
    return 2 * n**3 / best / 1e9
