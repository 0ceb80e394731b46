"""The original pipeline, re-implemented so the speed benchmark can time it against ours.

What the code this toolkit started from did per training step: decode every clip with
``librosa.load`` and featurise it with ``ASTFeatureExtractor`` at its default 1024 frames, mask
one example and one band at a time in a Python loop (torchaudio's ``TimeMasking`` /
``FrequencyMasking``), run AST over 1024 frames (1214 tokens), decode with a Conv1d over the
flattened token sequence, and step AdamW with its CPU default (per-tensor loop)::

    model = OriginalPipelineSSL(build_encoder("tiny", FeatureSettings(clip_seconds=10.24)), MaskSettings())
    loss = model(input_values=OriginalPipelineClips(paths)[0]["input_values"][None])["loss"]

Only ``mosquito-ssl benchmarks speed`` uses it; training in this toolkit is ``model.ssl.ASTSSL``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import ASTModel

from ..model.flops import ASTShape, ast_shape, encoder_flops
from ..model.masking import MaskSettings

ORIGINAL_FRAMES = 1024  # ASTFeatureExtractor's default max_length (10.24 s)
DECODER_DIM = 256


class OriginalPipelineClips(torch.utils.data.Dataset):
    """Decode and featurise every clip on every access, padded to 1024 frames (the original pipeline)."""

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


def original_masks(x: torch.Tensor, mask: MaskSettings) -> torch.Tensor:
    """Masked copy of ``x`` (B, T, F), one example and one band at a time, as the original
    pipeline's torchaudio ``TimeMasking``/``FrequencyMasking`` (width ~ U{0..W}, start ~ U{0..L-w})."""
    out = x.clone()
    for example in out:
        for axis, n, width in ((0, mask.time_masks, mask.time_width), (1, mask.freq_masks, mask.freq_width)):
            length = example.shape[axis]
            for _ in range(n):
                w = int(torch.randint(0, min(width, length) + 1, ()))
                s = int(torch.randint(0, length - w + 1, ()))
                example.narrow(axis, s, w).zero_()
    return out


def original_decoder_flops(s: ASTShape, decoder_dim: int = DECODER_DIM) -> int:
    """The original Conv1d decoder over the flattened token sequence (k=3), per clip."""
    return 2 * s.tokens * 3 * (s.hidden * decoder_dim + decoder_dim * s.bins)


class OriginalPipelineSSL(nn.Module):
    """The original pipeline's AST_SSL: Conv1d over the token sequence, stretched onto the frames."""

    def __init__(self, encoder: ASTModel, mask: MaskSettings, decoder_dim: int = DECODER_DIM) -> None:
        super().__init__()
        self.encoder, self.mask, self.decoder_dim = encoder, mask, decoder_dim
        cfg = encoder.config
        self.decoder = nn.Sequential(
            nn.Conv1d(cfg.hidden_size, decoder_dim, 3, padding=1),
            nn.GELU(),
            nn.Conv1d(decoder_dim, cfg.num_mel_bins, 3, padding=1),
        )

    def forward(self, input_values: torch.Tensor) -> dict[str, Any]:
        masked = original_masks(input_values, self.mask)
        tokens = self.encoder(input_values=masked).last_hidden_state  # (B, S, H), CLS/dist kept
        decoded = self.decoder(tokens.transpose(1, 2))
        decoded = F.interpolate(decoded, size=input_values.shape[1], mode="linear")
        return {"loss": F.mse_loss(decoded.transpose(1, 2), input_values)}

    def forward_flops(self) -> int:
        """Forward FLOPs per clip (encoder + this decoder), as ``model.flops`` counts them."""
        s = ast_shape(self.encoder.config)
        return encoder_flops(s) + original_decoder_flops(s, self.decoder_dim)
