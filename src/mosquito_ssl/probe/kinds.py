"""The probe kinds and which of them run under which ``freeze`` setting.

    mosquito-ssl probe linear data/synth --encoder random:tiny

Owned by the probe stage; the probe config and the sweep spec (``benchmarks/spec.py``) both
read these tables, so a combination valid in one is valid in the other. Torch-free on purpose:
the sweep spec and the reports import it without loading a model.
"""

from __future__ import annotations

# Probes that train a head on a frozen encoder's embeddings.
FROZEN_PROBES = ("linear", "layerwise", "mlp")
# The one probe that trains the encoder itself (any freeze setting).
FINETUNE = "finetune"
PROBES = (*FROZEN_PROBES, FINETUNE)
# Hand-crafted features have no network (nothing to fine-tune) and no layers.
HANDCRAFTED_PROBES = ("linear", "mlp")


def pairs(freeze: str, probes: tuple[str, ...] | list[str] = PROBES) -> list[str]:
    """The probes of ``probes`` that run under canonical ``freeze``.

    ``frozen`` takes every probe (finetune then trains only its head); ``partial:K`` / ``full``
    train the encoder, which only ``finetune`` does.
    """
    if freeze == "frozen":
        return list(probes)
    return [p for p in probes if p == FINETUNE]
