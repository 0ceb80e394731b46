"""The settings of each SSL method, declared once (default, help, valid range); no torch here.

``--help``, the checks and the flat ``PretrainConfig`` fields are derived from these classes, so
``mosquito-ssl pretrain --help`` lists them without importing torch::

    ReconstructSettings(mask_strength=0.5)   MAESettings(mask_ratio=0.75)
    TeacherSettings(views=4)                 BYOLSettings(mixup_ratio=0.4)

A setting of several methods (``mask_ratio`` of mae and teacher) has one help text and one
type; its default may differ by method (the EMA decays of teacher and byol).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import check_fields, setting

MASK_KINDS = ("specaugment", "time", "freq", "patch")
LOSS_ON = ("all", "masked")
PATCH_FRACTION = 0.3  # blocks masked at strength 1 (mask_kind patch): about SpecAugment's coverage

EMA_DECAY = "EMA decay of the target network at the start of training."
EMA_END_DECAY = "EMA decay at the end of the anneal."
EMA_ANNEAL = "Fraction of all steps over which the decay is annealed."


@dataclass(frozen=True)
class MaskSettings:
    """The original pipeline's SpecAugment masks, scaled by one knob (``masking.sample_masks``)."""

    mask_strength: float = setting(1.0, "Scales the mask widths; 0 = no masking.", ge=0)
    mask_kind: str = setting("specaugment", "Mask shape.", choices=MASK_KINDS)
    time_width: int = setting(20, "Largest time-mask width in frames at strength 1.", ge=0)
    freq_width: int = setting(24, "Largest frequency-mask width in bins at strength 1.", ge=0)
    time_masks: int = setting(2, "Time masks per clip.", ge=0)
    freq_masks: int = setting(2, "Frequency masks per clip.", ge=0)

    def __post_init__(self) -> None:
        check_fields(self)

    @property
    def max_time_width(self) -> int:
        return round(self.time_width * self.mask_strength)

    @property
    def max_freq_width(self) -> int:
        return round(self.freq_width * self.mask_strength)

    @property
    def patch_fraction(self) -> float:
        return min(1.0, PATCH_FRACTION * self.mask_strength)


@dataclass(frozen=True)
class ReconstructSettings(MaskSettings):
    """``reconstruct``: the masks plus which cells the reconstruction MSE covers."""

    loss_on: str = setting("all", "Reconstruction MSE over all cells or the masked ones only.", choices=LOSS_ON)

    @property
    def mask(self) -> MaskSettings:
        return MaskSettings(**{k: getattr(self, k) for k in MaskSettings.__dataclass_fields__})


@dataclass(frozen=True)
class MaskedSettings:
    """What the visible-token methods (mae, teacher) share: random patch masking and a decoder."""

    mask_ratio: float = setting(0.8, "Fraction of patches masked (AudioMAE: 0.8).", gt=0, lt=1)
    decoder_dim: int | None = setting(None, "Decoder width.", ge=1, default_text="half the encoder's, >= 32")
    decoder_layers: int = setting(2, "Decoder blocks.", ge=1)
    decoder_heads: int | None = setting(None, "Decoder attention heads.", ge=1, default_text="width / 32")

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class MAESettings(MaskedSettings):
    norm_pix_loss: bool = setting(True, "Normalise each target patch (MAE's norm-pix loss).")


@dataclass(frozen=True)
class TeacherSettings(MaskedSettings):
    views: int = setting(4, "Masked student views per clip sharing one teacher pass (EAT: 16).", ge=1)
    top_k: int | None = setting(None, "Teacher blocks averaged into the targets.", ge=1, default_text="all")
    # EAT anneals 0.9998 -> 0.99999 over 100k updates; runs here are ~1k updates, so the teacher
    # must move faster: 0.999 -> 0.9999 over the whole run.
    ema_decay: float = setting(0.999, EMA_DECAY, ge=0, le=1)
    ema_end_decay: float = setting(0.9999, EMA_END_DECAY, ge=0, le=1)
    ema_anneal: float = setting(1.0, EMA_ANNEAL, ge=0, le=1)
    clip_loss: float = setting(1.0, "Weight of the clip (CLS) loss (EAT's utterance loss).", ge=0)


@dataclass(frozen=True)
class BYOLSettings:
    ema_decay: float = setting(0.99, EMA_DECAY, ge=0, le=1)  # BYOL-A's target decay
    ema_end_decay: float = setting(0.99, EMA_END_DECAY, ge=0, le=1)
    ema_anneal: float = setting(1.0, EMA_ANNEAL, ge=0, le=1)
    proj_dim: int = setting(256, "Projection width (BYOL-A: 256).", ge=1)
    proj_hidden: int = setting(1024, "Projector and predictor hidden width.", ge=1)  # BYOL-A: 4096 at width 2048
    mixup_ratio: float = setting(0.4, "Largest mixing weight of another clip (BYOL-A's mixup ratio).", ge=0, le=1)
    min_crop: float = setting(0.6, "Shortest time crop, as a fraction of the clip (BYOL-A: 0.6).", gt=0, le=1)

    def __post_init__(self) -> None:
        check_fields(self)
