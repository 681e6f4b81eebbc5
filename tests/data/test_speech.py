"""Tests of rnnlab.data.speech: JapaneseVowels and folders of WAV files."""

import json
import shutil
import subprocess

import numpy as np
import pytest

from rnnlab.data import series
from rnnlab.data.audio import FrontEnd
from rnnlab.data.speech import japanese_vowels, prepare_wavs, wav_folder

HAVE_VOWELS = any(
    (root := series.package_dir(p)) is not None
    and (root / "datasets/data/JapaneseVowels/JapaneseVowels_TRAIN.ts").is_file()
    for p in ("sktime", "aeon"))


@pytest.mark.skipif(not HAVE_VOWELS, reason="sktime or aeon not installed (rnnlab[data])")
def test_japanese_vowels_standard_split_lengths_and_standardisation():
    d = japanese_vowels()
    assert d.X_train.shape == (270, 29, 12) and d.X_test.shape == (370, 29, 12)
    assert d.X_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert np.bincount(d.y_train).tolist() == [30] * 9 and d.output_size == 9
    lengths = np.concatenate([d.lengths_train, d.lengths_test])
    assert lengths.min() == 7 and lengths.max() == 29 and lengths.dtype == np.int64
    real = np.arange(29)[None, :] < d.lengths_train[:, None]  # (N, T)
    np.testing.assert_allclose(d.X_train[real].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(d.X_train[real].std(axis=0), 1, atol=1e-4)
    assert not d.X_test[np.arange(29)[None, :] >= d.lengths_test[:, None]].any()
    assert len(d.meta["preprocessing"]["mean"]) == 12
    json.dumps(d.meta)


@pytest.fixture(autouse=True)
def _scipy_for_wav_tests(request):
    if "wav_folder" in request.node.name:
        pytest.importorskip("scipy")


def _tone_folder(root, rates=(16000, 8000)):
    """Three classes of noisy tones, four files each, varying length and sample rate."""
    from scipy.io import wavfile

    rng = np.random.default_rng(0)
    for name, freq in (("high", 3000.0), ("low", 300.0), ("mid", 1000.0)):
        (root / name).mkdir(parents=True)
        for i in range(4):
            rate = rates[i % len(rates)]
            t = np.arange(int((0.2 + 0.05 * i) * rate)) / rate
            x = 0.5 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.normal(size=t.size)
            wavfile.write(root / name / f"{i}.wav", rate, (x * 32767).astype(np.int16))


def test_wav_folder_reads_classes_lengths_and_a_stratified_split(tmp_path):
    _tone_folder(tmp_path)
    (tmp_path / "notes.txt").write_text("ignored")
    d = wav_folder(tmp_path, test_fraction=0.25)
    assert d.meta["classes"] == ["high", "low", "mid"]
    assert len(d.y_train) == 9 and np.bincount(d.y_test).tolist() == [1, 1, 1]
    # 0.2 s to 0.35 s at 10 ms hops: 1 + ceil((S - 400) / 160) frames at 16 kHz
    assert d.lengths_train.min() >= 18 and d.X_train.shape[1] == 34 == d.X_test.shape[1]
    assert d.X_train.shape[2] == 13 and d.X_train.dtype == np.float32
    # the sample rate does not change the frame count (files are resampled)
    by_file = dict(zip(d.meta["files_train"], d.lengths_train, strict=True))
    by_file.update(zip(d.meta["files_test"], d.lengths_test, strict=True))
    assert by_file["low/0.wav"] == by_file["mid/0.wav"] == by_file["high/0.wav"] == 19
    # the features separate the tones: nearest class mean of each utterance's mean frame
    def summary(X, lengths):
        return np.stack([x[:n].mean(axis=0) for x, n in zip(X, lengths, strict=True)])

    train = summary(d.X_train, d.lengths_train)
    means = np.stack([train[d.y_train == c].mean(axis=0) for c in range(3)])
    test = summary(d.X_test, d.lengths_test)
    guess = np.argmin(((test[:, None, :] - means[None]) ** 2).sum(axis=2), axis=1)
    np.testing.assert_array_equal(guess, d.y_test)
    json.dumps(d.meta)
    # new recordings prepared from meta alone match the loader's own arrays
    X, lengths = prepare_wavs([tmp_path / f for f in d.meta["files_test"]],
                              json.loads(json.dumps(d.meta)))
    np.testing.assert_array_equal(lengths, d.lengths_test)
    np.testing.assert_allclose(X, d.X_test[:, :X.shape[1]], atol=1e-6)


def test_wav_folder_uses_its_own_train_and_test_folders(tmp_path):
    _tone_folder(tmp_path / "train")
    _tone_folder(tmp_path / "test", rates=(22050,))
    d = wav_folder(tmp_path, front_end=FrontEnd(n_mfcc=None, n_mels=20),
                   standardize_features=False)
    assert len(d.y_train) == len(d.y_test) == 12 and d.input_size == 20
    assert d.meta["files_test"][0] == "test/high/0.wav"
    assert "mean" not in d.meta["preprocessing"]


def test_wav_folder_errors_are_one_line(tmp_path):
    with pytest.raises(ValueError, match="is not a directory"):
        wav_folder(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no class folders with .wav files"):
        wav_folder(tmp_path)
    _tone_folder(tmp_path / "data")
    with pytest.raises(ValueError, match="test_fraction"):
        wav_folder(tmp_path / "data", test_fraction=1)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_wav_folder_on_words_spoken_by_espeak_ng(tmp_path):
    for word in ("yes", "no"):
        (tmp_path / word).mkdir()
        for voice in ("en", "en-us"):
            for speed in (140, 180):
                out = tmp_path / word / f"{voice}-{speed}.wav"
                subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(out),
                                word], check=True, capture_output=True, timeout=30)
    d = wav_folder(tmp_path, test_fraction=0.25)
    assert d.meta["classes"] == ["no", "yes"] and len(d.y_test) == 2
    # a spoken word lasts a few tenths of a second: tens of 10 ms frames
    assert 20 <= d.lengths_train.min() and d.lengths_train.max() <= 150
    assert np.isfinite(d.X_train).all()
