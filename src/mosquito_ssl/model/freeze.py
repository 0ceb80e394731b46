"""The one ``freeze`` vocabulary: parsing, validation, canonical spelling, and applying it.

Used by the probe config, the sweep spec and pretraining alike, so a value accepted in one
place is accepted (and spelled) the same everywhere::

    parse_freeze("none")            # Freeze(kind="full", blocks=0); str() -> "full"
    apply_freeze(encoder, "partial:2")   # patch embedding + first 2 blocks frozen

Forms: ``frozen`` (nothing trains), ``full`` (everything trains; ``none`` is an alias),
``partial:K`` (the embeddings and the first K transformer blocks are frozen, 0 <= K <= layers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:  # parsing stays torch-free: configs and --help use it
    from torch import nn

FREEZE_FORMS = "frozen, full (alias none) or partial:K (K = transformer blocks frozen after the embeddings)"


@dataclass(frozen=True)
class Freeze:
    kind: str  # "frozen" | "partial" | "full"
    blocks: int = 0

    def __str__(self) -> str:
        return f"partial:{self.blocks}" if self.kind == "partial" else self.kind

    @property
    def trains_encoder(self) -> bool:
        return self.kind != "frozen"


def parse_freeze(freeze: str | Freeze, num_layers: int | None = None, flag: str = "--freeze") -> Freeze:
    """A ``Freeze`` from its text; ``ConfigError`` names ``flag`` and the valid forms.

    With ``num_layers`` known, ``partial:K`` is checked against the encoder's depth.
    """
    if isinstance(freeze, Freeze):
        parsed = freeze
    else:
        text = str(freeze).strip().lower()
        match = re.fullmatch(r"partial:(\d+)", text)
        if text in ("full", "none"):
            parsed = Freeze("full")
        elif text == "frozen":
            parsed = Freeze("frozen")
        elif match:
            parsed = Freeze("partial", int(match.group(1)))
        else:
            raise ConfigError(f"{flag} {freeze!r} is not valid: use {FREEZE_FORMS}")
    if parsed.kind == "partial" and num_layers is not None and parsed.blocks > num_layers:
        raise ConfigError(
            f"{flag} {freeze!s} freezes {parsed.blocks} blocks but the encoder has {num_layers}: "
            f"use partial:0 .. partial:{num_layers}"
        )
    return parsed


def canonical_freeze(freeze: str | Freeze, flag: str = "--freeze") -> str:
    """The canonical spelling of a freeze value (``none`` -> ``full``), validated."""
    return str(parse_freeze(freeze, flag=flag))


def apply_freeze(encoder: nn.Module, freeze: str | Freeze) -> int:
    """Set requires_grad per ``freeze`` and return the number of trainable parameters."""
    from .layout import blocks

    layers = blocks(encoder)
    parsed = parse_freeze(freeze, len(layers))
    encoder.requires_grad_(parsed.trains_encoder)
    if parsed.kind == "partial":
        # Embeddings = patch conv + CLS/distillation tokens + position embeddings.
        encoder.get_submodule("embeddings").requires_grad_(False)
        for block in layers[: parsed.blocks]:
            block.requires_grad_(False)
    return sum(p.numel() for p in encoder.parameters() if p.requires_grad)
