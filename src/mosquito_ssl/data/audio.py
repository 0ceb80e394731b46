"""Decoding audio files into float32 mono waveforms at one sample rate.

This module owns the only place files are decoded, the reasons a file is rejected
(``BadAudio.reason``) and the ``DECODES`` counter that proves a feature-cache hit decodes
nothing. It runs under ``mosquito-ssl data inspect DATA``.

Bad files are not user mistakes: ``BadAudio`` is a plain ``Exception`` so callers skip the
file, count its reason and go on.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import soundfile as sf

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
SILENCE_PEAK = 1e-6
REASONS = ("missing", "unreadable", "not_audio", "empty", "truncated", "nan_or_inf", "silent")
# Formats libsndfile decodes itself; anything else goes through librosa (audioread/ffmpeg).
SOUNDFILE_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".au", ".w64", ".caf", ".rf64"}
AUDIO_SUFFIXES = SOUNDFILE_SUFFIXES | {".mp3", ".m4a", ".aac", ".opus", ".wma", ".webm"}

# Decodes attempted since import (tests reset it); read it as ``audio.DECODES``.
DECODES = 0

# libsndfile corrects the frame count of a cut WAV and only says so in its log.
_WAV_DATA_SHORT = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


class BadAudio(Exception):
    """A file that cannot give a usable waveform; ``reason`` is one of ``REASONS``."""

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown BadAudio reason {reason!r}")
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def _require_file(path: Path) -> None:
    """``missing`` unless ``path`` is a file; a folder we may not look into makes it ``unreadable``."""
    try:
        if path.is_file():
            return
    except OSError as exc:  # is_file lets EACCES through (a parent folder without permission)
        raise BadAudio("unreadable", f"{path}: {exc}") from exc
    raise BadAudio("missing", str(path))


def fix_length(wave: np.ndarray, n: int) -> np.ndarray:
    """Zero-pad or cut ``wave`` to exactly ``n`` samples."""
    if len(wave) >= n:
        return wave[:n]
    return np.pad(wave, (0, n - len(wave)))


def _classify_open_error(path: Path, exc: Exception) -> BadAudio:
    """Tell an empty file, a non-audio (text) file and an undecodable one apart."""
    if isinstance(exc, (PermissionError, IsADirectoryError)):
        return BadAudio("unreadable", f"{path}: {exc}")
    try:
        head = path.read_bytes()[:512]
    except OSError as os_exc:
        return BadAudio("unreadable", f"{path}: {os_exc}")
    if not head:
        return BadAudio("empty", f"{path}: 0 bytes")
    if "not recognised" in str(exc).lower() and _looks_like_text(head):
        return BadAudio("not_audio", f"{path}: text, not audio")
    return BadAudio("unreadable", f"{path}: {exc}")


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _check_wav_header(path: Path, extra_info: str) -> None:
    match = _WAV_DATA_SHORT.search(extra_info or "")
    if match and int(match.group(2)) < int(match.group(1)):
        promised = int(match.group(1))
        raise BadAudio("truncated", f"{path}: header promises {promised} data bytes, file holds {match.group(2)}")


def _read_soundfile(path: Path, offset: float, duration: float | None) -> tuple[np.ndarray, int]:
    """Read only the frames of the window; a short read or mid-file error means truncated."""
    try:
        handle = sf.SoundFile(str(path))
    except Exception as exc:  # libsndfile raises RuntimeError subclasses, OSError for access
        raise _classify_open_error(path, exc) from exc
    with handle as fh:
        sr, total = fh.samplerate, fh.frames
        if total <= 0:
            raise BadAudio("empty", f"{path}: 0 frames")
        if fh.format in ("WAV", "WAVEX", "RF64"):
            _check_wav_header(path, fh.extra_info)
        start = min(round(offset * sr), total)
        want = total - start if duration is None else min(round(duration * sr), total - start)
        if want <= 0:
            raise BadAudio("empty", f"{path}: offset {offset}s is past the end ({total / sr:.3f}s)")
        try:
            fh.seek(start)
            wave = fh.read(want, dtype="float32", always_2d=True)
        except Exception as exc:
            raise BadAudio("truncated", f"{path}: decode failed mid-file ({exc})") from exc
    if len(wave) < want:
        raise BadAudio("truncated", f"{path}: header promises {want} frames from {offset}s, read {len(wave)}")
    return wave, sr


def _read_librosa(path: Path, offset: float, duration: float | None) -> tuple[np.ndarray, int]:
    import librosa  # slow import; only for formats libsndfile lacks

    try:
        wave, sr = librosa.load(str(path), sr=None, mono=False, offset=offset, duration=duration)
    except Exception as exc:
        raise _classify_open_error(path, exc) from exc
    wave = np.asarray(wave, dtype=np.float32)
    return (wave[:, None] if wave.ndim == 1 else wave.T), int(sr)


def resample(wave: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Band-limited resampling (soxr, as librosa uses by default)."""
    if orig_sr == target_sr:
        return wave
    try:
        import soxr
    except ImportError:
        import librosa

        return librosa.resample(wave, orig_sr=orig_sr, target_sr=target_sr).astype(np.float32)
    return soxr.resample(wave, orig_sr, target_sr).astype(np.float32)


def load_audio(
    path: str | Path, sample_rate: int = SAMPLE_RATE, offset: float = 0.0, duration: float | None = None
) -> np.ndarray:
    """Decode ``duration`` seconds from ``offset`` of ``path`` as float32 mono at ``sample_rate``.

    Raises ``BadAudio`` with the reason the file (or window) is unusable.
    """
    return read_clip(path, sample_rate, offset, duration)[0]


def read_clip(
    path: str | Path, sample_rate: int = SAMPLE_RATE, offset: float = 0.0, duration: float | None = None
) -> tuple[np.ndarray, int]:
    """``load_audio`` plus the file's own sample rate (the feature cache warns when it upsamples)."""
    global DECODES
    path = Path(path)
    _require_file(path)
    DECODES += 1
    if path.suffix.lower() in SOUNDFILE_SUFFIXES or path.suffix.lower() not in AUDIO_SUFFIXES:
        wave, sr = _read_soundfile(path, offset, duration)
    else:
        wave, sr = _read_librosa(path, offset, duration)
    wave = wave.mean(axis=1) if wave.shape[1] > 1 else wave[:, 0]  # downmix: mean keeps the level
    if wave.size == 0:
        raise BadAudio("empty", f"{path}: no samples")
    if not np.isfinite(wave).all():
        raise BadAudio("nan_or_inf", f"{path}: {int((~np.isfinite(wave)).sum())} non-finite samples")
    if float(np.max(np.abs(wave))) < SILENCE_PEAK:
        raise BadAudio("silent", f"{path}: peak below {SILENCE_PEAK:g}")
    return np.ascontiguousarray(resample(wave, sr, sample_rate), dtype=np.float32), sr


def recording_duration(path: str | Path) -> float:
    """Length of ``path`` in seconds from its header (no decoding)."""
    path = Path(path)
    _require_file(path)
    if path.suffix.lower() in AUDIO_SUFFIXES - SOUNDFILE_SUFFIXES:
        import librosa

        try:
            return float(librosa.get_duration(path=str(path)))
        except Exception as exc:
            raise _classify_open_error(path, exc) from exc
    try:
        info = sf.info(str(path))
    except Exception as exc:
        raise _classify_open_error(path, exc) from exc
    if info.frames <= 0:
        raise BadAudio("empty", f"{path}: 0 frames")
    return info.frames / info.samplerate
