"""Decoding, resampling, downmix and every BadAudio reason."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from mosquito_ssl.data import audio


def tone(freq, sr, seconds=1.0, channels=1):
    t = np.arange(int(sr * seconds)) / sr
    x = 0.5 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def peak_hz(wave, sr):
    spec = np.abs(np.fft.rfft(wave))
    return np.fft.rfftfreq(len(wave), 1 / sr)[spec.argmax()]


@pytest.mark.parametrize("sr", [8000, 44100, 16000])
def test_resamples_to_16k_and_keeps_frequency(tmp_path, sr):
    path = tmp_path / f"t{sr}.wav"
    sf.write(path, tone(440, sr), sr)
    wave = audio.load_audio(path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - 16000) <= 2
    assert abs(peak_hz(wave, 16000) - 440) <= 2


def test_stereo_is_downmixed(tmp_path):
    path = tmp_path / "st.flac"
    sf.write(path, tone(300, 22050, channels=2), 22050)
    wave = audio.load_audio(path)
    assert wave.ndim == 1 and abs(len(wave) - 16000) <= 2
    assert abs(peak_hz(wave, 16000) - 300) <= 2


def test_window_reads_only_the_window(tmp_path):
    sr = 8000
    x = np.concatenate([tone(200, sr, 1.0), tone(600, sr, 1.0)])
    sf.write(tmp_path / "two.wav", x, sr)
    second = audio.load_audio(tmp_path / "two.wav", offset=1.0, duration=1.0)
    assert abs(len(second) - 16000) <= 2
    assert abs(peak_hz(second, 16000) - 600) <= 2
    assert abs(audio.recording_duration(tmp_path / "two.wav") - 2.0) < 1e-6


def test_fix_length_pads_and_cuts():
    x = np.ones(10, np.float32)
    assert np.array_equal(audio.fix_length(x, 4), np.ones(4))
    padded = audio.fix_length(x, 15)
    assert len(padded) == 15 and padded[10:].sum() == 0


def test_decodes_counter_counts_attempts(tmp_path):
    sf.write(tmp_path / "a.wav", tone(440, 16000), 16000)
    before = audio.DECODES
    audio.load_audio(tmp_path / "a.wav")
    assert before + 1 == audio.DECODES


def make_bad_files(folder):
    """One file per BadAudio reason (except missing); returns {name: reason}."""
    sr = 16000
    sf.write(folder / "good.wav", tone(440, sr), sr, subtype="PCM_16")
    (folder / "unreadable.wav").write_bytes(bytes(range(256)) * 8)
    sf.write(folder / "empty.wav", np.zeros(0, np.float32), sr)
    data = (folder / "good.wav").read_bytes()
    (folder / "truncated.wav").write_bytes(data[: len(data) // 2])
    (folder / "text.wav").write_text("this is not audio\n" * 20)
    nan = tone(440, sr)
    nan[100] = np.nan
    sf.write(folder / "nan.wav", nan, sr, subtype="FLOAT")
    sf.write(folder / "silent.wav", np.zeros(sr, np.float32), sr, subtype="PCM_16")
    return {
        "unreadable.wav": "unreadable", "empty.wav": "empty", "truncated.wav": "truncated",
        "text.wav": "not_audio", "nan.wav": "nan_or_inf", "silent.wav": "silent",
    }  # fmt: skip


def test_every_bad_file_has_its_reason(tmp_path):
    expected = make_bad_files(tmp_path)
    for name, reason in expected.items():
        with pytest.raises(audio.BadAudio) as info:
            audio.load_audio(tmp_path / name)
        assert info.value.reason == reason, name
    with pytest.raises(audio.BadAudio) as info:
        audio.load_audio(tmp_path / "nope.wav")
    assert info.value.reason == "missing"
    assert audio.load_audio(tmp_path / "good.wav").shape == (16000,)


def test_bad_audio_is_not_a_user_error():
    from mosquito_ssl.errors import MosquitoSSLError

    assert not issubclass(audio.BadAudio, MosquitoSSLError)


def test_truncated_flac(tmp_path):
    sf.write(tmp_path / "t.flac", tone(440, 16000, 2.0), 16000)
    data = (tmp_path / "t.flac").read_bytes()
    (tmp_path / "cut.flac").write_bytes(data[: len(data) // 2])
    with pytest.raises(audio.BadAudio) as info:
        audio.load_audio(tmp_path / "cut.flac")
    assert info.value.reason == "truncated"
