"""scikit-learn estimators over :class:`~rnnlab.Network` and :class:`~rnnlab.Trainer`.

Shape legend: N sequences, T steps, D features per step, K classes or outputs.

:class:`RNNClassifier` gives one label per sequence and :class:`RNNRegressor` one value (or
K values) per sequence: a recurrent network reads each sequence and its head reads the
state after the sequence's last real step (the network's ``readout="last"``), or with
``readout="mean" | "max" | "attention"`` the top layer's outputs pooled over the real steps.
``X`` takes three forms:

* an array (N, T, D): N sequences of T steps of D features;
* an array (N, T), a table as scikit-learn sees it: each row is a sequence of T steps of
  one feature. Its columns are scikit-learn's features (``n_features_in_ = T``), so
  ``predict`` takes tables of the same T columns, as every scikit-learn estimator does;
  sequences of another length go as (M, T', 1) arrays or a list;
* a list of N arrays (T_i, D) of different lengths: padded with zeros at the end and passed
  to the network with their lengths, so the padding changes neither the state nor the loss.

For the sequence forms ``n_features_in_`` is D. Both estimators follow scikit-learn's rules:
the constructor stores its arguments, ``fit`` checks them (with :mod:`rnnlab.checks`) and
the data, learned attributes end in ``_``, ``random_state`` makes a fit reproducible, and
``get_params``, ``set_params``, ``clone``, ``score``, pipelines, ``cross_val_score`` and
``GridSearchCV`` work as with any estimator. Inputs are used as given: scale them first.
"""

from __future__ import annotations

if __name__ == "sklearn":  # this file taken for scikit-learn: rnnlab's own folder is on sys.path
    raise ImportError(f"{__file__} was imported as scikit-learn because the folder of rnnlab's "
                      "modules is on sys.path (a script run from inside it?); run it from "
                      "elsewhere, or as python -m")


import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data
except ImportError:
    raise ImportError('rnnlab.sklearn needs scikit-learn 1.6 or later: '
                      'pip install "rnnlab[sklearn]"') from None

from . import checks, optim
from .cells import LAYERS
from .network import Network
from .train import Trainer

__all__ = ["RNNClassifier", "RNNRegressor"]

_CHUNK = 1024  # sequences per forward pass in predict: bounds the memory it needs
READOUTS = ("last", "mean", "max", "attention")  # one output per sequence
#: the network's cell options the estimators pass on when they are not off
_VARIANTS = ("proj_size", "peepholes", "layer_norm", "dropout", "recurrent_dropout", "zoneout")


def _off(value) -> bool:
    """Whether a variant's value is its off setting (0, 0.0, False, or all zeros)."""
    if isinstance(value, (tuple, list)):
        return all(_off(v) for v in value)
    return value is False or (not isinstance(value, bool) and value == 0)


class _RNNEstimator(BaseEstimator):
    """What the classifier and the regressor share: parameters, data checks, the fit."""

    def __init__(self, *, cell="lstm", hidden_size=32, num_layers=1, bidirectional=False,
                 window=None, readout="last", epochs=50, batch_size=32, lr=1e-2,
                 optimizer="adam", clip_norm=1.0, bptt=None, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=5, random_state=None, verbose=0,
                 dtype=np.float32,
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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags

    # the fit ------------------------------------------------------------------------------
    def _fit(self, X, y, *, output: str, stratify: bool):
        """Check everything, train a network on ``X`` and the encoded targets ``y``."""
        self._check_params()
        opt = optim.make_optimizer(self.optimizer, lr=self.lr)
        options = self._network_options()
        dtype = checks.float_dtype(self.dtype)
        X, lengths = self._sequences(X, reset=True)
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y "
                             "is None")
        y, n_outputs = self._encode_targets(y, len(X))
        rng = check_random_state(self.random_state)
        net_seed, train_seed, split_seed = (int(s) for s in rng.randint(2**31 - 1, size=3))
        net = Network(X.shape[2], self.hidden_size, n_outputs, cell=self.cell,
                      num_layers=self.num_layers, output=output, readout=self.readout,
                      seed=net_seed, dtype=dtype, **options)
        trainer = Trainer(net, optimizer=opt, lr=opt.lr, clip_norm=self.clip_norm,
                          bptt_steps=self.bptt, batch_size=self.batch_size, seed=train_seed,
                          patience=self.n_iter_no_change if self.early_stopping else None,
                          progress=bool(self.verbose))
        validation = None
        if self.early_stopping:
            train, held = train_test_split(np.arange(len(X)), test_size=self.validation_fraction,
                                           random_state=split_seed,
                                           stratify=y if stratify else None)
            validation = (X[held], y[held]) + (() if lengths is None else (lengths[held],))
            X, y = X[train], y[train]
            lengths = None if lengths is None else lengths[train]
        self.history_ = trainer.fit(X, y, epochs=self.epochs, validation=validation,
                                    lengths=lengths)
        self.n_iter_ = len(self.history_.epoch)
        self.network_ = net
        return self

    def _check_params(self) -> None:
        """The hyper-parameters, checked before any data is touched."""
        checks.choice(self.cell, "cell", tuple(LAYERS))
        checks.positive_int(self.hidden_size, "hidden_size")
        checks.positive_int(self.num_layers, "num_layers")
        checks.boolean(self.bidirectional, "bidirectional")
        checks.optional(checks.positive_int, self.window, "window")
        checks.choice(self.readout, "readout", READOUTS)
        checks.positive_int(self.epochs, "epochs")
        checks.positive_int(self.batch_size, "batch_size")
        checks.positive_number(self.lr, "lr")
        checks.optional(checks.positive_number, self.clip_norm, "clip_norm")
        checks.optional(checks.positive_int, self.bptt, "bptt")
        if self.bptt is not None and self.readout != "last":
            raise ValueError(f"bptt={self.bptt} truncates the gradient to each sequence's last "
                             f"steps, but readout={self.readout!r} pools every step: use "
                             "bptt=None, or readout='last'")
        if self.bptt is not None and self.bidirectional:
            raise ValueError(f"bptt={self.bptt} truncates the gradient to each sequence's last "
                             "steps, but bidirectional layers read whole sequences both ways: "
                             "use bptt=None with bidirectional=True")
        checks.boolean(self.early_stopping, "early_stopping")
        checks.number(self.validation_fraction, "validation_fraction", low=0, high=1,
                      low_open=True, high_open=True)
        checks.positive_int(self.n_iter_no_change, "n_iter_no_change")
        if not isinstance(self.verbose, (bool, np.bool_)):
            checks.integer(self.verbose, "verbose", minimum=0)
        checks.float_dtype(self.dtype)

    def _network_options(self) -> dict:
        """The network's options beyond its sizes: ``bidirectional``, ``precision`` and
        the cell variants that are on (``window``, ``proj_size``, ...), which the network
        checks (a variant another cell does not have is refused there, in one line)."""
        extra = {} if self.window is None else {"window": self.window}
        variants = {name: getattr(self, name) for name in _VARIANTS
                    if not _off(getattr(self, name))}
        return {"bidirectional": bool(self.bidirectional), "precision": self.precision,
                **extra, **variants}

    # the inputs ---------------------------------------------------------------------------
    def _sequences(self, X, *, reset: bool):
        """``X`` as padded sequences (N, T, D) of the network's dtype and their lengths (N,),
        or None when all have T steps. ``reset``: in ``fit`` (sets ``n_features_in_``)."""
        dtype = checks.float_dtype(self.dtype)
        if isinstance(X, (list, tuple)) and len(X):
            ndim = np.ndim(X[0]) + 1
            if ndim > 2:
                return self._pad(X, dtype, reset)
            steps = {len(x) for x in X} if ndim == 2 else ()
            if len(steps) > 1:
                raise ValueError(f"X is a list of 1-D sequences of different lengths ("
                                 f"{min(steps)} to {max(steps)} steps): give each as an array "
                                 "(T_i, 1) of one feature per step")
        else:
            ndim = getattr(X, "ndim", 2)  # scikit-learn's checks convert the rest
        if ndim not in (2, 3):
            shape = np.shape(X)
            hint = (". Reshape your data: X.reshape(1, -1) is one sequence of "
                    f"{shape[0]} steps" if ndim == 1 else "")
            raise ValueError("X must be sequences (N, T, D), a table (N, T) of one feature per "
                             f"step or a list of (T_i, D) arrays, got shape {shape}{hint}")
        if ndim == 2:
            return self._table(X, dtype, reset), None
        X = check_array(X, allow_nd=True, dtype=dtype, input_name="X", estimator=self)
        if X.shape[1] == 0 or X.shape[2] == 0:
            raise ValueError(f"X must have at least one step and one feature per step, got "
                             f"shape {X.shape}")
        self._check_step_features(X.shape[2], reset, table=False)
        return X, None

    def _table(self, X, dtype, reset: bool) -> np.ndarray:
        """A 2-D X, checked as scikit-learn checks tables, as sequences (N, T, 1)."""
        if reset or self._fitted_on_table:
            # scikit-learn's own checks: dtype, NaN, empty, columns and their names
            X = validate_data(self, X, reset=reset, dtype=dtype)
        else:
            X = check_array(X, dtype=dtype, input_name="X", estimator=self)
            self._check_step_features(1, reset=False, table=True)
        if reset:
            self._fitted_on_table = True
        return X[:, :, None]  # (N, T, 1)

    def _pad(self, X, dtype, reset: bool):
        """A list of (T_i, D) arrays as zero-padded sequences (N, T, D) and lengths (N,)."""
        first = checks.array(X[0], "X[0]", (None, None), dtype)
        D = first.shape[1]
        self._check_step_features(D, reset, table=False)
        seqs = [first] + [checks.array(x, f"X[{i}]", (None, D), dtype)
                          for i, x in enumerate(X[1:], start=1)]
        lengths = np.array([len(s) for s in seqs], dtype=np.int64)
        if D == 0 or not lengths.all():
            i = int(np.argmin(lengths)) if D else 0
            raise ValueError(f"every sequence of X needs at least one step and one feature per "
                             f"step, got X[{i}] of shape {seqs[i].shape}")
        out = np.zeros((len(seqs), int(lengths.max()), D), dtype=dtype)  # (N, T, D)
        for i, s in enumerate(seqs):
            out[i, :len(s)] = s
        return out, None if (lengths == lengths[0]).all() else lengths

    def _check_step_features(self, D: int, reset: bool, *, table: bool) -> None:
        if reset:
            self.n_features_in_ = D
            self._fitted_on_table = False
            self.__dict__.pop("feature_names_in_", None)  # a table fitted before had them
            return
        want = self.network_.rnn.input_size
        if D != want:
            got = "a 2-D X has 1 feature" if table else f"X has {_features(D)}"
            raise ValueError(f"{got} per step, but {type(self).__name__} is expecting "
                             f"{_features(want)} per step as input")

    def _outputs(self, X) -> np.ndarray:
        """The network's predictions (N, K) for X, float64."""
        check_is_fitted(self)
        X, lengths = self._sequences(X, reset=False)
        parts = [self.network_.predict(X[i:i + _CHUNK],
                                       lengths=None if lengths is None else lengths[i:i + _CHUNK])
                 for i in range(0, len(X), _CHUNK)]
        return np.concatenate(parts).astype(np.float64)


def _features(n: int) -> str:
    return f"{n} feature" + ("" if n == 1 else "s")


class RNNClassifier(ClassifierMixin, _RNNEstimator):
    """A recurrent network that gives each sequence one class, as a scikit-learn classifier.

    Parameters
    ----------
    cell : {"lstm", "elman", "gru", "ffnn"}
        ``"ffnn"``: the feedforward baseline over the last ``window`` steps.
    hidden_size : int
        Units per recurrent layer.
    num_layers : int
    bidirectional : bool
        Layers that read each sequence both ways (:class:`rnnlab.Network`'s
        ``bidirectional``).
    window : int or None
        ``cell="ffnn"`` only: the steps each step sees (None: 8).
    readout : {"last", "mean", "max", "attention"}
        What the head reads (:class:`rnnlab.Network`'s ``readout``): the state after each
        sequence's last real step, or the top layer's outputs over its real steps pooled by
        their mean, their per-unit maximum or learned attention weights.
    epochs : int
        Passes over the training data (fewer with ``early_stopping``).
    batch_size : int
    lr : float
        Learning rate.
    optimizer : {"adam", "adamw", "sgd", "rmsprop", "adagrad"}
    clip_norm : float or None
        Rescale the gradient when its global L2 norm exceeds this.
    bptt : int or None
        Truncated BPTT: the gradient of each sequence's loss reaches back through its last
        ``bptt`` real steps only (:func:`rnnlab.bptt.last_steps`); the steps before run
        forward for the state alone, saving their memory and most of their time. None:
        full BPTT over the whole sequence.
    early_stopping : bool
        Hold out ``validation_fraction`` of the training data (stratified by class), stop
        after ``n_iter_no_change`` epochs without a lower validation loss and keep the
        parameters of the best epoch.
    validation_fraction : float in (0, 1)
    n_iter_no_change : int
    random_state : int, numpy.random.RandomState or None
        Initial weights, shuffling and the validation split; an int makes ``fit``
        reproducible.
    verbose : bool or int
        A progress bar on standard error.
    dtype : float32 or float64
        The network's floating-point type.
    proj_size, peepholes, layer_norm : the LSTM's projection and peepholes, layer
        normalisation of the LSTM and GRU (:class:`rnnlab.LSTM`); 0 / False for none
    dropout, recurrent_dropout, zoneout : train-time dropout between stacked layers,
        variational dropout on the recurrent state, zoneout (:class:`rnnlab.Network`);
        0 for none
    precision : {"fp32", "bf16", "auto"}
        What the matrix products compute in (:attr:`rnnlab.Network.precision`).

    Attributes
    ----------
    classes_ : ndarray (K,)
        The labels seen in ``fit``, sorted (as :func:`numpy.unique` gives them).
    n_features_in_ : int
        Features as scikit-learn counts them: D per step, or T columns of a 2-D X.
    feature_names_in_ : ndarray of str
        Column names, when ``fit`` got a table with string column names (a DataFrame).
    network_ : rnnlab.Network
        The trained network: softmax over ``classes_`` from each sequence's last state (or
        its pooled outputs, by ``readout``).
    history_ : rnnlab.train.History
        Training (and validation) loss per epoch and the rest of :meth:`rnnlab.Trainer.fit`'s
        record.
    n_iter_ : int
        Epochs run.
    """

    def fit(self, X, y):
        """Train on sequences ``X`` with one label per sequence ``y`` (N,): any labels that
        :func:`numpy.unique` sorts (ints, strings, bools). Returns ``self``."""
        return self._fit(X, y, output="softmax", stratify=True)

    def _encode_targets(self, y, n: int):
        y = column_or_1d(y, warn=True)  # (N, 1) warns, as scikit-learn's classifiers do
        if len(y) != n:
            raise ValueError(f"X holds {n} sequences but y holds {len(y)} labels")
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise ValueError(f"y contains NaN or Inf (first at index "
                             f"{int(np.argmin(np.isfinite(y)))})")
        check_classification_targets(y)
        self.classes_, encoded = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"{type(self).__name__} needs at least two classes to learn, got "
                             f"one class: {self.classes_[0]!r}")
        return encoded.reshape(-1).astype(np.int64), len(self.classes_)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (N, K), in the order of ``classes_``."""
        p = self._outputs(X)
        return p / p.sum(axis=1, keepdims=True)  # exactly normalised in float64

    def predict(self, X) -> np.ndarray:
        """The most probable class of each sequence (N,), as the labels given to ``fit``."""
        best = np.argmax(self._outputs(X), axis=1)  # first: an unfitted one has no classes_
        return self.classes_[best]


class RNNRegressor(RegressorMixin, _RNNEstimator):
    """A recurrent network that gives each sequence one value or K values, as a
    scikit-learn regressor.

    Targets are standardised for training (each column to mean 0 and standard deviation 1;
    ``target_mean_`` and ``target_scale_``), so the learning rate does not depend on their
    scale; ``predict`` returns them in the units of ``y``.

    Parameters
    ----------
    **params
        Those of :class:`RNNClassifier`, with the same defaults; ``early_stopping`` holds out
        a random (not stratified) ``validation_fraction``.

    Attributes
    ----------
    n_features_in_ : int
        Features as scikit-learn counts them: D per step, or T columns of a 2-D X.
    feature_names_in_ : ndarray of str
        Column names, when ``fit`` got a table with string column names (a DataFrame).
    n_outputs_ : int
        K, values per sequence.
    target_mean_, target_scale_ : ndarray (K,)
        The standardisation of the targets: the network predicts
        ``(y - target_mean_) / target_scale_``.
    network_ : rnnlab.Network
        The trained network: a linear head on each sequence's last state (or its pooled
        outputs, by ``readout``).
    history_ : rnnlab.train.History
    n_iter_ : int
        Epochs run.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def fit(self, X, y):
        """Train on sequences ``X`` with targets ``y``, (N,) or (N, K). Returns ``self``."""
        return self._fit(X, y, output="linear", stratify=False)

    def _encode_targets(self, y, n: int):
        y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y", estimator=self)
        if len(y) != n:
            raise ValueError(f"X holds {n} sequences but y holds {len(y)} targets")
        self._single_output = y.ndim == 1
        y2 = y.reshape(n, -1)  # (N, K)
        self.n_outputs_ = y2.shape[1]
        self.target_mean_ = y2.mean(axis=0)
        scale = y2.std(axis=0)
        self.target_scale_ = np.where(scale > 0, scale, 1.0)
        return (y2 - self.target_mean_) / self.target_scale_, self.n_outputs_

    def predict(self, X) -> np.ndarray:
        """Predicted targets: (N,) when ``y`` was (N,) in ``fit``, else (N, K)."""
        z = self._outputs(X) * self.target_scale_ + self.target_mean_
        return z[:, 0] if self._single_output else z
