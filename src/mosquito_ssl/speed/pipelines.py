"""The training pipelines ``benchmarks speed`` times, one entry each, all measured the same way.

Each entry builds its model for a preset, says what its data loader reads and how many FLOPs a
clip costs (counted on a real forward and training step); ``run.run_speed`` times every entry
into ``<name>_clips_per_s``, ``<name>_gflops``, ``<name>_fraction_of_peak``... fields. Every
method of the registry (``model/methods.py``) is an entry; the original pipeline is the one more::

    mosquito-ssl benchmarks speed --preset base --batch 8 --json

==============  ==============================================================================
``original``    the original pipeline (``original.py``): audio decoded per step, 1024 frames,
                Python-loop masks, token-sequence decoder, unfused AdamW
``reconstruct`` this toolkit's reconstruct method: the feature cache (memmap) at 100 frames,
                batched masks, decoder along the time patches, fused AdamW (the Trainer default)
``mae``         ``--method mae``: the encoder sees the ~20% visible patches (stride 16), narrow decoder
``teacher``     ``--method teacher``: one full no-grad EMA-teacher pass + 4 masked student views
``byol``        ``--method byol``: two augmented views through online and EMA target networks
==============  ==============================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ..errors import ConfigError
from ..model.methods import METHODS, Method

READS = ("audio", "cache")  # decode the wav files every step | read the feature cache


@dataclass(frozen=True)
class Pipeline:
    name: str  # prefix of its result fields
    label: str  # its row in the table
    build: Callable[[str], nn.Module]  # preset -> model whose forward returns {"loss": ...}
    reads: str  # one of READS
    forward_flops: Callable[[nn.Module], int]  # per clip; a training step counts TRAIN_FACTOR of it
    fused_adamw: bool = True
    slow: bool = False  # timed for --original-steps steps instead of --steps
    # Training FLOPs per clip counted on a real step; for models with untrained passes (EMA
    # teachers), where TRAIN_FACTOR x forward_flops would overcount. None: use forward_flops.
    step_flops: Callable[[nn.Module], int] | None = None

    def __post_init__(self) -> None:
        if self.reads not in READS:
            raise ValueError(f"Pipeline {self.name!r}: reads={self.reads!r}, use one of {READS}")


def _build_original(preset: str) -> nn.Module:
    from ..data.features import FeatureSettings
    from ..model.encoder import build_encoder
    from ..model.masking import MaskSettings
    from .original import ORIGINAL_FRAMES, OriginalPipelineSSL

    features = FeatureSettings(clip_seconds=ORIGINAL_FRAMES / 100)
    return OriginalPipelineSSL(build_encoder(preset, features=features), MaskSettings())


def _original_flops(model: nn.Module) -> int:
    from .original import OriginalPipelineSSL

    if not isinstance(model, OriginalPipelineSSL):
        raise TypeError(f"the original pipeline's FLOP count needs an OriginalPipelineSSL, not {type(model).__name__}")
    return model.forward_flops()


def _method(method: str) -> Callable[[str], nn.Module]:
    """Builder of a ``--method`` model with its default settings (model/methods.py)."""

    def build(preset: str) -> nn.Module:
        from ..data.features import FeatureSettings
        from ..model.encoder import build_encoder
        from ..model.methods import build_ssl_model

        return build_ssl_model(method, build_encoder(preset, features=FeatureSettings()), {})

    return build


def _counted_forward(model: nn.Module) -> int:
    from ..model.flops import counted_forward_flops

    return counted_forward_flops(model)


def _counted_step(model: nn.Module) -> int:
    from ..model.flops import counted_step_flops

    return counted_step_flops(model)


def _method_pipeline(method: Method) -> Pipeline:
    return Pipeline(
        method.name, method.speed_label, _method(method.name), "cache", _counted_forward, step_flops=_counted_step
    )


# The original pipeline, then every method of the registry (its row label is the entry's speed_label).
PIPELINES: tuple[Pipeline, ...] = (
    Pipeline("original", "original pipeline", _build_original, "audio", _original_flops, fused_adamw=False, slow=True),
    *(_method_pipeline(m) for m in METHODS.values()),
)
BASELINE = "original"  # speedups are relative to this pipeline
MEMORY_REFERENCE = "reconstruct"  # --equal-memory matches the activation memory of this one (dense)


def pipeline(name: str) -> Pipeline:
    for p in PIPELINES:
        if p.name == name:
            return p
    raise ConfigError(f"unknown speed pipeline {name!r}: use one of {', '.join(p.name for p in PIPELINES)}")
