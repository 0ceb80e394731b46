"""FLOPs of the AST encoder and the reconstruct method, as nanoGPT's ``estimate_mfu`` counts them.

Used by ``mosquito-ssl benchmarks speed`` (``mosquito_ssl.speed``) to turn clips per second
into an achieved FLOP rate. A multiply-add is 2 FLOPs; only matmul-like work is counted (linear
layers, attention products, convolutions), as ``torch.utils.flop_counter`` does. Bias adds,
LayerNorm, GELU, softmax and the optimizer are memory-bound and left out: they cost time, not
FLOPs, which is exactly what the fraction of peak shows.

Per clip, with S tokens (2 + f_dim * t_dim), hidden H, MLP width I, L layers::

    layer     = 8*S*H^2 (Q, K, V, output projections) + 4*S^2*H (scores QK^T and weights @ V)
              + 4*S*H*I (MLP fc1 + fc2)
    encoder   = L * layer + 2 * f_dim*t_dim * H * p*p (patch-embedding conv of p x p patches, one channel)
    decoder   = 2*f_dim*t_dim*H*P (projector) + 2*t_dim*3*(f_dim*P*D + D*bins) (Conv1d, k=3)
    training  = 3 * forward (backward = grads w.r.t. activations + weights, 2x forward)

    python -c "from mosquito_ssl.model.encoder import *; from mosquito_ssl.model.flops import *; \\
               print(encoder_flops(ast_shape(preset_config('base'))))"

A method without an analytic count is measured with ``counted_forward_flops`` and, for a training
step (an EMA teacher's pass has no backward), ``counted_step_flops`` (FlopCounterMode).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .presets import patch_grid

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


def ast_shape(config: Any) -> ASTShape:
    """Shape of an ``ASTConfig`` (patch grid as ``ASTEmbeddings.get_shape``)."""
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


def encoder_flops(s: ASTShape) -> int:
    """Forward FLOPs of one clip through the AST encoder."""
    S, H, I = s.tokens, s.hidden, s.intermediate  # noqa: E741 (the formula's names)
    layer = 8 * S * H * H + 4 * S * S * H + 4 * S * H * I
    patch_embed = 2 * s.f_dim * s.t_dim * H * s.patch * s.patch
    return s.layers * layer + patch_embed


def reconstruct_decoder_flops(s: ASTShape, proj_dim: int = 64, decoder_dim: int = 256) -> int:
    """Projector + Conv1d decoder of ``model.ssl.ASTSSL`` along the time-patch axis."""
    projector = 2 * s.f_dim * s.t_dim * s.hidden * proj_dim
    conv = 2 * s.t_dim * 3 * (s.f_dim * proj_dim * decoder_dim + decoder_dim * s.bins)
    return projector + conv


def reconstruct_forward_flops(model: Any) -> int:
    """Forward FLOPs per clip of an ``ASTSSL`` (the reconstruct method)."""
    s = ast_shape(model.encoder.config)
    return encoder_flops(s) + reconstruct_decoder_flops(s, model.proj_dim, model.decoder_dim)


def _sdpa_cpu(query, key, value, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query, key, value)


def _sdpa_cpu_backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_backward_flop_count

    return sdpa_backward_flop_count(grad_out, query, key, value)


def flop_counter() -> Any:
    """``FlopCounterMode`` that also counts the CPU flash-attention kernel SDPA dispatches to
    (torch 2.13 registers formulas for the CUDA kernels only, so CPU attention would read 0)."""
    from torch.utils.flop_counter import FlopCounterMode

    aten = torch.ops.aten
    mapping = {
        aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu,
        aten._scaled_dot_product_flash_attention_for_cpu_backward: _sdpa_cpu_backward,
    }
    return FlopCounterMode(display=False, custom_mapping=mapping)


def measured_flops(fn: Callable[[], Any]) -> int:
    """FLOPs ``fn()`` runs, as counted by ``flop_counter()``."""
    with flop_counter() as counter:
        fn()
    return int(counter.get_total_flops())


def counted_step_flops(model: Any, clips: int = 2) -> int:
    """Training FLOPs per clip (forward + backward) of any SSL model, counted on one real step.

    For methods whose passes are not all trained (an EMA teacher's forward has no backward),
    ``TRAIN_FACTOR`` x forward would overcount. Two clips: BatchNorm (byol) needs more than one.
    """
    cfg = model.encoder.config
    x = torch.randn(clips, cfg.max_length, cfg.num_mel_bins, device=next(model.parameters()).device)
    model.train()
    flops = measured_flops(lambda: model(input_values=x).loss.backward())
    model.zero_grad(set_to_none=True)
    return flops // clips


def counted_forward_flops(model: Any) -> int:
    """Forward FLOPs per clip of any SSL model, counted on one zero clip of its encoder's shape."""
    cfg = model.encoder.config
    x = torch.zeros(1, cfg.max_length, cfg.num_mel_bins, device=next(model.parameters()).device)
    with torch.no_grad():
        return measured_flops(lambda: model(input_values=x))
