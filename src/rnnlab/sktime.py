"""An sktime time-series classifier over :class:`rnnlab.sklearn.RNNClassifier`.

Shape legend: N series (instances), C channels (variables), T time points.

:class:`RNNClassifier` is an sktime ``BaseClassifier``: a recurrent network reads each
series step by step and gives it one class. It takes what sktime's classifiers take
(any Panel type sktime converts: ``numpy3D`` (N, C, T), ``nested_univ``, ``pd-multiindex``,
``df-list``), multivariate series (C > 1) and series of unequal length, which reach it as a
list of (T_i, C) frames and are padded, with their lengths, so the padding changes neither
the state nor the loss. The training and the network are those of
:class:`rnnlab.sklearn.RNNClassifier`, whose parameters it takes with the same defaults;
``estimator_`` is the fitted scikit-learn estimator. Series are used as given: UCR/UEA
series are z-normalised by the archive already; scale others first.
"""

from __future__ import annotations

if __name__ == "sktime":  # this file taken for sktime: rnnlab's own folder is on sys.path
    raise ImportError(f"{__file__} was imported as sktime because the folder of rnnlab's "
                      "modules is on sys.path (a script run from inside it?); run it from "
                      "elsewhere, or as python -m")

import numpy as np

try:
    from sktime.classification.base import BaseClassifier
except ImportError:
    raise ImportError('rnnlab.sktime needs sktime 1.2: pip install "rnnlab[sktime]"') from None

from . import sklearn as _sklearn

__all__ = ["RNNClassifier"]


class RNNClassifier(BaseClassifier):
    """A recurrent network that gives each time series one class, as an sktime classifier.

    Parameters
    ----------
    cell, hidden_size, num_layers, bidirectional, window, readout, epochs, batch_size, lr,
    optimizer, clip_norm, bptt, early_stopping, validation_fraction, n_iter_no_change,
    random_state, verbose, dtype, proj_size, peepholes, layer_norm, dropout,
    recurrent_dropout, zoneout, precision
        Those of :class:`rnnlab.sklearn.RNNClassifier`, with the same defaults: an LSTM of
        32 units whose head reads each series' last state, 50 epochs of Adam at 1e-2 in
        batches of 32, float32 (``dtype`` given as a name, as sktime's checks want it).

    Attributes
    ----------
    classes_ : ndarray (K,)
        The labels seen in ``fit``, sorted (sktime's).
    estimator_ : rnnlab.sklearn.RNNClassifier
        The fitted estimator; its ``network_`` is the trained :class:`rnnlab.Network` and
        its ``history_`` the training record.

    Examples
    --------
    >>> from sktime.datasets import load_italy_power_demand
    >>> from rnnlab.sktime import RNNClassifier
    >>> X, y = load_italy_power_demand(split="train", return_X_y=True)
    >>> clf = RNNClassifier(cell="gru", epochs=5, random_state=0).fit(X, y)
    >>> clf.predict(X).shape
    (67,)
    """

    _tags = {
        "authors": ["rnnlab"],
        # numpy3D stays as it is; every other Panel type (unequal lengths among them) is
        # converted to the first: a list of (T_i, C) frames
        "X_inner_mtype": ["df-list", "numpy3D"],
        "y_inner_mtype": "numpy1D",
        "capability:multivariate": True,
        "capability:unequal_length": True,
        "capability:missing_values": False,
        "capability:predict_proba": True,
        "capability:random_state": True,
        "property:randomness": "derandomized",
        "python_dependencies": "scikit-learn>=1.6",
    }

    def __init__(self, *, cell="lstm", hidden_size=32, num_layers=1, bidirectional=False,
                 window=None, readout="last", epochs=50, batch_size=32, lr=1e-2,
                 optimizer="adam", clip_norm=1.0, bptt=None, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=5, random_state=None, verbose=0,
                 dtype="float32",
                 proj_size=0, peepholes=False, layer_norm=False, dropout=0.0,
                 recurrent_dropout=0.0, zoneout=0.0, precision="fp32"):
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.window = window
        self.readout = readout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.clip_norm = clip_norm
        self.bptt = bptt
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state
        self.verbose = verbose
        self.dtype = dtype
        self.proj_size = proj_size
        self.peepholes = peepholes
        self.layer_norm = layer_norm
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.zoneout = zoneout
        self.precision = precision
        super().__init__()

    @staticmethod
    def _sequences(X):
        """sktime's inner X as rnnlab's sequences: numpy3D (N, C, T) -> (N, T, C); a
        df-list -> a list of (T_i, C) arrays."""
        if isinstance(X, np.ndarray):
            return X.transpose(0, 2, 1)  # (N, T, C)
        return [np.asarray(frame, dtype=np.float64) for frame in X]  # (T_i, C) each

    def _fit(self, X, y):
        self.estimator_ = _sklearn.RNNClassifier(**self.get_params(deep=False))
        self.estimator_.fit(self._sequences(X), y)
        if not np.array_equal(self.estimator_.classes_, self.classes_):  # both np.unique
            raise RuntimeError(f"class order differs: {self.estimator_.classes_!r} against "
                               f"sktime's {self.classes_!r}")
        return self

    def _predict(self, X) -> np.ndarray:
        return self.estimator_.predict(self._sequences(X))

    def _predict_proba(self, X) -> np.ndarray:
        return self.estimator_.predict_proba(self._sequences(X))  # (N, K), classes_' order

    @classmethod
    def get_test_params(cls, parameter_set="default"):
        """Small, quick settings for sktime's estimator checks: an LSTM reading the last
        state and a GRU with attention pooling, a few units, a few epochs."""
        return [
            {"hidden_size": 4, "epochs": 2, "batch_size": 8, "random_state": 0},
            {"cell": "gru", "readout": "attention", "hidden_size": 3, "epochs": 3,
             "lr": 3e-2, "random_state": 1},
        ]
