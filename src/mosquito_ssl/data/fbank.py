"""Log-mel filterbanks at any sample rate: AST's 25-ms frames and 10-ms hop, in seconds.

    mosquito-ssl pretrain field_recordings/ --window 1 --sample-rate 8000

``ASTFeatureExtractor`` without torchaudio counts its frames in samples fitted to 16 kHz
(a 400-sample window, a 160-sample hop, a 512-point FFT). At 8 kHz that is a 50-ms window
and a 20-ms hop: a 1-s clip gives 48 frames, zero-padded to the 100 the encoder expects; with
torchaudio installed, Kaldi's fbank gives 98 frames of 25 ms instead. ``extractor_for``
returns the stock extractor at 16 kHz (bit-identical to AST's features) and, at any other
rate, ``RateMatchedExtractor``: the same numpy recipe (pre-emphasis, DC removal, Hann window,
power spectrum, Kaldi mel scale from 20 Hz to Nyquist, natural log) with the window and hop
in seconds, so every rate gives 100 frames per second whether or not torchaudio is present.
"""

from __future__ import annotations

import warnings

import numpy as np
from transformers import ASTFeatureExtractor
from transformers.audio_utils import mel_filter_bank, spectrogram, window_function

AST_RATE = 16000
FRAME_SECONDS = 0.025  # Kaldi's (and AST's) frame length
HOP_SECONDS = 0.010  # Kaldi's frame shift: FRAMES_PER_SECOND = 100 at every rate
MIN_FFT = 512  # AST's FFT size; longer frames get the next power of two


class RateMatchedExtractor(ASTFeatureExtractor):
    """``ASTFeatureExtractor`` with its frame and hop set in seconds (numpy path at every rate)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        rate = self.sampling_rate
        self.frame_length = round(FRAME_SECONDS * rate)
        self.hop_length = round(HOP_SECONDS * rate)
        self.fft_length = max(MIN_FFT, 1 << (self.frame_length - 1).bit_length())
        with warnings.catch_warnings():  # many mel bins on a short FFT leave the lowest filters empty
            warnings.simplefilter("ignore", UserWarning)
            self.mel_filters = mel_filter_bank(
                num_frequency_bins=self.fft_length // 2 + 1,
                num_mel_filters=self.num_mel_bins,
                min_frequency=20,
                max_frequency=rate // 2,
                sampling_rate=rate,
                norm=None,
                mel_scale="kaldi",
                triangularize_in_mel_space=True,
            )
        self.window = window_function(self.frame_length, "hann", periodic=False)

    def to_dict(self) -> dict:
        out = super().to_dict()
        for key in ("frame_length", "hop_length", "fft_length"):  # derived from sampling_rate
            out.pop(key, None)
        return out

    def _extract_fbank_features(self, waveform: np.ndarray, max_length: int) -> np.ndarray:
        fbank = spectrogram(
            np.squeeze(waveform),
            self.window,
            frame_length=self.frame_length,
            hop_length=self.hop_length,
            fft_length=self.fft_length,
            power=2.0,
            center=False,
            preemphasis=0.97,
            mel_filters=self.mel_filters,
            log_mel="log",
            mel_floor=1.192092955078125e-07,
            remove_dc_offset=True,
        ).T
        out = np.zeros((max_length, fbank.shape[1]), dtype=np.float32)  # zero-padded like the stock one
        n = min(max_length, fbank.shape[0])
        out[:n] = fbank[:n]
        return out


def extractor_for(sample_rate: int, **kwargs) -> ASTFeatureExtractor:
    """The stock extractor at AST's 16 kHz, the rate-matched one elsewhere."""
    cls = ASTFeatureExtractor if sample_rate == AST_RATE else RateMatchedExtractor
    with warnings.catch_warnings():  # 128 kaldi mel bins on a 512-point FFT leave one empty
        warnings.simplefilter("ignore", UserWarning)
        return cls(sampling_rate=sample_rate, **kwargs)
