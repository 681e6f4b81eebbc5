"""An audio front end in NumPy/SciPy: frames, power spectrum, log-mel filterbank, MFCC.

Shape legend: S samples, T frames, L samples per frame, F = n_fft/2 + 1 frequency bins,
M mel bands, C cepstral coefficients.

The chain, as in speech recognisers since Davis and Mermelstein (1980)::

    signal (S,) -> pre-emphasis -> frames (T, L) -> window -> |rFFT|^2 / n_fft (T, F)
               -> mel filterbank (T, M) -> log -> DCT-II, first C (T, C) = MFCC

:class:`FrontEnd` holds every setting and turns a signal into features in one call; the
functions it uses are public so each stage can be inspected or tested on its own. The mel
scale is HTK's, ``mel = 2595 log10(1 + f / 700)``; the filters are triangles of peak 1 on
the continuous frequency axis (as librosa's ``htk=True, norm=None``).

Functions
---------
read_wav
    A WAV file as a mono float32 signal in [-1, 1] and its sample rate.
resample
    Polyphase resampling to another rate.
frame
    Overlapping frames of a signal.
power_spectrum
    Windowed power spectrum of frames.
mel_filterbank
    Triangular mel filters as a (F, M) matrix.
hz_to_mel, mel_to_hz
    The HTK mel scale and its inverse.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "FrontEnd",
    "frame",
    "hz_to_mel",
    "mel_filterbank",
    "mel_to_hz",
    "power_spectrum",
    "read_wav",
    "resample",
]

_LOG_FLOOR = 1e-10  # keeps log() finite on silent frames (-230 dB below full scale)


def _scipy(what: str):
    try:
        import scipy.fft
        import scipy.io.wavfile
        import scipy.signal
    except ImportError:
        raise ValueError(f"{what} needs SciPy, which is not installed: "
                         f"pip install 'rnnlab[data]' (or pip install scipy)") from None
    return scipy


@dataclass(frozen=True)
class FrontEnd:
    """Settings of the feature extractor; calling it turns a signal into (T, D) features.

    Attributes
    ----------
    sample_rate : int
        Hz. Signals at another rate are resampled to it first, so features are comparable.
    frame_ms, hop_ms : float
        Frame length and step between frame starts, in milliseconds (25 and 10 are usual).
    n_fft : int
        FFT size, at least the frame length in samples; frames are zero-padded to it.
    n_mels : int
        Mel bands M.
    n_mfcc : int or None
        Cepstral coefficients C kept after the DCT (D = C); None returns the log-mel
        energies themselves (D = M).
    fmin, fmax : float or None
        Frequency range of the filterbank in Hz; fmax None is half the sample rate.
    preemphasis : float
        ``y[n] = x[n] - a x[n-1]``, flattening speech's spectral tilt; 0 turns it off.
    window : str
        Any window name ``scipy.signal.get_window`` knows (periodic form).
    """

    sample_rate: int = 16000
    frame_ms: float = 25.0
    hop_ms: float = 10.0
    n_fft: int = 512
    n_mels: int = 40
    n_mfcc: int | None = 13
    fmin: float = 0.0
    fmax: float | None = None
    preemphasis: float = 0.97
    window: str = "hann"

    def __post_init__(self):
        if not (isinstance(self.sample_rate, int) and self.sample_rate > 0):
            raise ValueError(f"sample_rate must be a positive integer, got {self.sample_rate!r}")
        if not self.hop_ms > 0:
            raise ValueError(f"hop_ms must be positive, got {self.hop_ms!r}")
        if not 1 <= self.frame_length <= self.n_fft:
            raise ValueError(f"the frame ({self.frame_ms} ms = {self.frame_length} samples) "
                             f"must be between 1 sample and n_fft = {self.n_fft}")
        if not (isinstance(self.n_mels, int) and self.n_mels > 0):
            raise ValueError(f"n_mels must be a positive integer, got {self.n_mels!r}")
        if self.n_mfcc is not None and not (isinstance(self.n_mfcc, int)
                                            and 1 <= self.n_mfcc <= self.n_mels):
            raise ValueError(f"n_mfcc must be None or an integer from 1 to n_mels = "
                             f"{self.n_mels}, got {self.n_mfcc!r}")
        fmax = self.sample_rate / 2 if self.fmax is None else self.fmax
        if not 0 <= self.fmin < fmax <= self.sample_rate / 2:
            raise ValueError(f"need 0 <= fmin < fmax <= sample_rate / 2 = "
                             f"{self.sample_rate / 2}, got fmin={self.fmin}, fmax={self.fmax}")
        if not 0 <= self.preemphasis < 1:
            raise ValueError(f"preemphasis must be in [0, 1), got {self.preemphasis!r}")

    @property
    def frame_length(self) -> int:
        """L, samples per frame."""
        return round(self.sample_rate * self.frame_ms / 1000)

    @property
    def hop_length(self) -> int:
        """Samples between frame starts."""
        return max(1, round(self.sample_rate * self.hop_ms / 1000))

    @property
    def size(self) -> int:
        """D, features per frame."""
        return self.n_mels if self.n_mfcc is None else self.n_mfcc

    def config(self) -> dict:
        """The settings as a plain dict (``FrontEnd(**config)`` rebuilds it)."""
        return asdict(self)

    def log_mel(self, signal, sample_rate: int | None = None) -> np.ndarray:
        """Log mel-band energies (T, M) float32 of a 1-D signal at ``sample_rate``
        (default: the front end's own)."""
        x = np.asarray(signal, dtype=np.float64)
        if x.ndim != 1:
            raise ValueError(f"signal must be one-dimensional (S,), got shape {x.shape}")
        if sample_rate is not None and sample_rate != self.sample_rate:
            x = resample(x, sample_rate, self.sample_rate)
        if self.preemphasis:
            x = np.append(x[:1], x[1:] - self.preemphasis * x[:-1])
        frames = frame(x, self.frame_length, self.hop_length)  # (T, L)
        power = power_spectrum(frames, self.n_fft, self.window)  # (T, F)
        fb = mel_filterbank(self.sample_rate, self.n_fft, self.n_mels, self.fmin, self.fmax)
        return np.log(power @ fb + _LOG_FLOOR).astype(np.float32)  # (T, M)

    def __call__(self, signal, sample_rate: int | None = None) -> np.ndarray:
        """Features (T, D) float32: MFCC (``n_mfcc`` set) or log-mel energies."""
        logmel = self.log_mel(signal, sample_rate)
        if self.n_mfcc is None:
            return logmel
        cep = _scipy("MFCC").fft.dct(logmel.astype(np.float64), type=2, norm="ortho", axis=1)
        return cep[:, :self.n_mfcc].astype(np.float32)  # (T, C)


def read_wav(path) -> tuple[np.ndarray, int]:
    """A WAV file as a mono signal.

    Returns
    -------
    signal : ndarray (S,) float32
        Integer PCM scaled to [-1, 1) (8-bit unsigned centred first); float files as stored.
        Channels are averaged.
    sample_rate : int
    """
    rate, data = _scipy("Reading WAV files").io.wavfile.read(path)
    if data.dtype == np.uint8:
        x = (data.astype(np.float32) - 128.0) / 128.0
    elif data.dtype.kind == "i":
        x = data.astype(np.float32) / float(2 ** (8 * data.dtype.itemsize - 1))
    else:
        x = data.astype(np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    return x, int(rate)


def resample(signal, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample a 1-D signal from ``rate_in`` to ``rate_out`` Hz (polyphase, anti-aliased)."""
    if rate_in == rate_out:
        return np.asarray(signal)
    g = math.gcd(int(rate_in), int(rate_out))
    return _scipy("Resampling").signal.resample_poly(signal, rate_out // g, rate_in // g)


def frame(signal, frame_length: int, hop_length: int) -> np.ndarray:
    """Overlapping frames of a 1-D signal.

    The end is zero-padded so that every sample lies in some frame: T = 1 + ceil((S - L) /
    hop) for S > L, and one (padded) frame for a shorter signal.

    Returns
    -------
    ndarray (T, L), the signal's dtype (a copy).
    """
    x = np.asarray(signal)
    S = len(x)
    T = 1 + max(0, math.ceil((S - frame_length) / hop_length))
    need = (T - 1) * hop_length + frame_length
    x = np.concatenate([x, np.zeros(need - S, dtype=x.dtype)])
    idx = np.arange(frame_length)[None, :] + hop_length * np.arange(T)[:, None]  # (T, L)
    return x[idx]


def power_spectrum(frames, n_fft: int, window: str = "hann") -> np.ndarray:
    """``|rFFT(frame * window, n_fft)|^2 / n_fft`` for each frame.

    Parameters
    ----------
    frames : ndarray (T, L), L <= n_fft
    n_fft : int
    window : str
        A ``scipy.signal.get_window`` name.

    Returns
    -------
    ndarray (T, n_fft // 2 + 1) float64
    """
    scipy = _scipy("The power spectrum")
    frames = np.asarray(frames, dtype=np.float64)
    w = scipy.signal.get_window(window, frames.shape[1], fftbins=True)
    spec = scipy.fft.rfft(frames * w, n=n_fft, axis=1)  # (T, F) complex
    return (spec.real ** 2 + spec.imag ** 2) / n_fft


def hz_to_mel(f):
    """HTK mel scale: ``2595 log10(1 + f / 700)``."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    """Inverse of :func:`hz_to_mel`."""
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: float | None = None) -> np.ndarray:
    """Triangular filters equally spaced on the mel scale.

    Filter m rises linearly from centre frequency m-1 to 1 at centre m and falls to 0 at
    centre m+1; centres are ``n_mels + 2`` points equally spaced in mel from fmin to fmax.

    Returns
    -------
    ndarray (n_fft // 2 + 1, n_mels) float64
        Multiply a power spectrum (T, F) by it to get band energies (T, M).
    """
    fmax = sample_rate / 2 if fmax is None else fmax
    freqs = np.arange(n_fft // 2 + 1) * sample_rate / n_fft  # (F,)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))  # (M + 2,)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rise = (freqs[:, None] - lower) / (centre - lower)  # (F, M)
    fall = (upper - freqs[:, None]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rise, fall))
