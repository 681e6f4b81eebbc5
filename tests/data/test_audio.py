"""Tests of rnnlab.data.audio: framing, power spectrum, mel filterbank, MFCC, WAV reading."""

import numpy as np
import pytest

pytest.importorskip("scipy")
from scipy.fft import idct  # noqa: E402
from scipy.io import wavfile  # noqa: E402

from rnnlab.data import audio  # noqa: E402
from rnnlab.data.audio import FrontEnd  # noqa: E402


def tone(freq, seconds=0.5, rate=16000, amplitude=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return amplitude * np.sin(2 * np.pi * freq * t)


def test_mel_scale_round_trip_and_anchor():
    f = np.array([0.0, 300.0, 1000.0, 7999.0])
    np.testing.assert_allclose(audio.mel_to_hz(audio.hz_to_mel(f)), f, atol=1e-9)
    assert abs(audio.hz_to_mel(1000.0) - 1000.0) < 0.1  # the scale's defining point


def test_frame_covers_every_sample_and_pads_the_end():
    x = np.arange(10.0)
    f = audio.frame(x, 4, 3)  # starts 0, 3, 6: the last frame holds 6..9
    np.testing.assert_array_equal(f, [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]])
    f = audio.frame(np.arange(11.0), 4, 3)  # sample 10 needs a fourth, padded frame
    np.testing.assert_array_equal(f[-1], [9, 10, 0, 0])
    assert audio.frame(np.ones(2), 4, 3).shape == (1, 4)


def test_power_spectrum_peak_and_parseval():
    rate, n_fft = 16000, 512
    x = tone(1000.0, seconds=n_fft / rate, rate=rate)[None, :]  # one frame, 32 cycles
    p = audio.power_spectrum(x, n_fft, "boxcar")
    assert p.shape == (1, n_fft // 2 + 1) and p[0].argmax() == 1000 * n_fft // rate
    # Parseval for the one-sided spectrum of a real frame: DC and Nyquist counted once.
    x = np.random.default_rng(0).normal(size=(3, n_fft))
    p = audio.power_spectrum(x, n_fft, "boxcar")
    total = p[:, 0] + 2 * p[:, 1:-1].sum(axis=1) + p[:, -1]
    np.testing.assert_allclose(total, (x ** 2).sum(axis=1), rtol=1e-10)


def test_mel_filterbank_triangles():
    rate, n_fft, M = 16000, 512, 40
    fb = audio.mel_filterbank(rate, n_fft, M)
    assert fb.shape == (257, M) and fb.min() == 0 and fb.max() <= 1
    assert (fb.sum(axis=0) > 0).all()  # no empty filter at this resolution
    edges = audio.mel_to_hz(np.linspace(0, audio.hz_to_mel(rate / 2), M + 2))
    freqs = np.arange(257) * rate / n_fft
    for m in (0, 17, M - 1):  # a filter is zero outside its neighbours' centres
        outside = (freqs <= edges[m]) | (freqs >= edges[m + 2])
        assert (fb[outside, m] == 0).all() and (fb[~outside, m] > 0).all()
    # a filter peaks at 1 exactly where a bin sits on its centre
    fb = audio.mel_filterbank(rate, n_fft, 3, fmin=audio.mel_to_hz(0), fmax=4000.0)
    centre = audio.mel_to_hz(np.linspace(0, audio.hz_to_mel(4000.0), 5))[1:-1]
    k = np.argmin(np.abs(freqs[:, None] - centre), axis=0)
    assert np.all(fb[k, [0, 1, 2]] > 0.9)


@pytest.mark.parametrize("freq", [300.0, 1000.0, 3000.0])
def test_a_tone_lights_the_mel_band_around_it(freq):
    fe = FrontEnd(n_mfcc=None, preemphasis=0.0)
    logmel = fe(tone(freq))
    # 8000 samples, 400-sample frames every 160: 1 + ceil(7600 / 160) frames
    assert logmel.shape == (49, 40) and logmel.dtype == np.float32
    centres = audio.mel_to_hz(np.linspace(0, audio.hz_to_mel(8000.0), 42))[1:-1]
    assert abs(centres[logmel.mean(axis=0).argmax()] - freq) < 0.1 * freq + 60


def test_mfcc_is_the_dct_of_log_mel_and_resampling_keeps_the_picture():
    x = tone(440.0) + 0.1 * np.random.default_rng(0).normal(size=8000)
    full = FrontEnd(n_mfcc=40)(x)  # all coefficients: invertible
    logmel = FrontEnd(n_mfcc=None)(x)
    np.testing.assert_allclose(idct(full.astype(np.float64), norm="ortho", axis=1), logmel,
                               atol=1e-3)
    mfcc = FrontEnd()(x)
    np.testing.assert_array_equal(mfcc, full[:, :13])
    # the same tone recorded at 8 kHz, brought to 16 kHz by the front end
    at8k = FrontEnd(n_mfcc=None, fmax=3800.0)
    low = at8k(tone(440.0, rate=8000), sample_rate=8000)
    high = at8k(tone(440.0))
    assert low.shape == high.shape and low.mean(0).argmax() == high.mean(0).argmax()


@pytest.mark.parametrize("kwargs, message", [
    ({"sample_rate": 0}, "sample_rate"), ({"frame_ms": 64.0}, "n_fft"),
    ({"n_mfcc": 41}, "n_mfcc"), ({"fmax": 9000.0}, "fmax"), ({"preemphasis": 1.0}, "pre"),
    ({"hop_ms": 0}, "hop_ms"), ({"n_mels": 0}, "n_mels"),
])
def test_front_end_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FrontEnd(**kwargs)


def test_front_end_config_round_trip():
    fe = FrontEnd(sample_rate=8000, n_mels=26, n_mfcc=12)
    assert FrontEnd(**fe.config()) == fe and fe.size == 12 and fe.frame_length == 200


def test_read_wav_scales_every_sample_format_to_unit_range(tmp_path):
    x = 0.5 * np.sin(np.linspace(0, 20, 800))
    cases = {
        "int16": (x * 32768).astype(np.int16),
        "int32": (x * 2 ** 31).astype(np.int32),
        "uint8": (x * 128 + 128).astype(np.uint8),
        "float32": x.astype(np.float32),
        "stereo": np.stack([(x * 32768).astype(np.int16)] * 2, axis=1),
    }
    for name, data in cases.items():
        wavfile.write(tmp_path / f"{name}.wav", 8000, data)
        signal, rate = audio.read_wav(tmp_path / f"{name}.wav")
        assert rate == 8000 and signal.dtype == np.float32 and signal.shape == (800,)
        np.testing.assert_allclose(signal, x, atol=1e-2, err_msg=name)
