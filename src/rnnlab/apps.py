"""Training and evaluation of the application data sets from the command line.

Shape legend: N sequences, T steps, D features per step, K classes or forecast steps.

``rnnlab train --task NAME`` calls :func:`train_task` and ``rnnlab eval RUN`` on such a run
calls :func:`evaluate_task`. A task is a loader from :mod:`rnnlab.data` with the settings of
the matching example in ``examples/apps_*.py`` (those that reached their targets) as
defaults; a recurrent :class:`~rnnlab.Network` reads each sequence and a head on its last
state gives class probabilities (softmax) or the forecast (linear, sunspots). Training uses
:class:`rnnlab.Trainer`: Adam, a cosine schedule over all updates, global-norm clipping.

Run folder (``out``)::

    model.rnnlab    the trained network (rnnlab.load reads it); with an ensemble of K,
                    the first member, and model-1.rnnlab ... model-<K-1>.rnnlab the others
    run.json        format "rnnlab-task-run", version 1, task, ranks (1, or N under
                    mpiexec), the data set's meta (split, preprocessing), the data
                    options, the environment, and results (test accuracy or RMSE)
    config.json     the training settings
    metrics.jsonl   one line per logged update and one per epoch (rnnlab.Trainer)
    loss.png        training loss per epoch (when matplotlib is installed)
    report.html     the run on one web page, with --report (rnnlab.report)

``evaluate_task`` prepares the test data from the saved options, checks that the
preprocessing is the saved one, and writes ``confusion.png`` or ``forecast.png``.

``--task ucr:NAME`` trains on a UCR/UEA classification set bundled with sktime (any of
:func:`rnnlab.data.series.ucr_names`) and ``--task ucr:PATH`` on a folder holding the
archive's ``NAME_TRAIN.ts`` and ``NAME_TEST.ts``; their settings come from the set's shape
by the rule of :func:`ucr_task` and are written to ``config.json``.

A task may add Gaussian noise to the real (unpadded) steps of every training batch
(``Task.noise``, JapaneseVowels as in its example) and augment them
(:mod:`rnnlab.data.augment`); test data is never perturbed. ``val_split`` holds out a
stratified cut of the training split and keeps the best validation epoch's parameters;
``ensemble=K`` trains K networks (consecutive seeds), written as ``model.rnnlab``,
``model-1.rnnlab``, ..., and scores their averaged class probabilities.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import checks, engine, io, parallel, runlock
from ._version import __version__
from .data.augment import Augmenter
from .network import Network
from .saving import load
from .train import Trainer

__all__ = ["NoisyTrainer", "TASKS", "TASK_FORMAT", "TASK_VERSION", "Task", "UCR_PREFIX",
           "evaluate_task", "load_task_data", "open_task_run", "plot_confusion", "plot_forecast",
           "score_test", "train_task", "ucr_task", "validation_cut"]

TASK_FORMAT = "rnnlab-task-run"
TASK_VERSION = 1


@dataclass(frozen=True)
class Task:
    """A data set and the training settings that reached its target (from the examples)."""

    kind: str  # "classification" or "forecasting"
    cell: str
    hidden: int
    epochs: int
    batch: int
    lr: float
    images: bool = False  # accepts ``patch``
    pool: int = 1  # average this many consecutive steps (GunPoint: 150 -> 75 steps)
    window: int = 20  # forecasting: years of history per input
    noise: float = 0.0  # std of Gaussian noise on the real steps of training batches
    readout: str = "last"  # what the head reads: "last" state, or "mean" / "max" over steps
    patch: int = 1  # ucr: tasks: read this many consecutive steps as one
    bidirectional: bool = False  # read each sequence both ways
    augment: str = ""  # augmentations of training batches (rnnlab.data.augment), "" none
    val_split: float = 0.0  # share of the training split held out to keep the best epoch
    ensemble: int = 1  # networks trained with consecutive seeds, probabilities averaged


TASKS: dict[str, Task] = {
    # examples/apps_digits.py
    "digits": Task("classification", "lstm", 64, 30, 32, 1e-2, images=True),
    # examples/apps_fashion_mnist.py
    "fashion-mnist": Task("classification", "gru", 128, 20, 128, 2e-3, images=True),
    # examples/apps_japanese_vowels.py
    "japanese-vowels": Task("classification", "lstm", 96, 60, 16, 5e-3, noise=1.2),
    # examples/apps_sunspots.py
    "sunspots": Task("forecasting", "gru", 32, 100, 32, 3e-3, window=20),
    # examples/apps_gunpoint.py (pooling by 2)
    "gunpoint": Task("classification", "lstm", 32, 150, 10, 5e-3, pool=2),
}


UCR_PREFIX = "ucr:"
"""``ucr:NAME`` (a bundled set) or ``ucr:PATH`` (a folder of ``.ts`` files) names a task."""


@functools.lru_cache(maxsize=4)
def _ucr_raw(source: str):
    from .data.series import ucr
    data = ucr(source)
    D = data.input_size
    return ucr(source, standardize_features=D > 1) if D > 1 else data


def ucr_task(n_train: int, steps: int, channels: int = 1) -> Task:
    """The settings of a ``ucr:`` task, decided from the set's shape alone (never from its
    test split), so an unseen set gets a recipe with no flags.

    The rule, for N training series of T steps of D channels: a GRU of 64 units reading
    patches of ``P = max(1, T // 32)`` consecutive steps as one step of ``P * D`` features
    (:func:`rnnlab.data.series.patches`), so that it reads 32 to 63 steps (T of them when T
    is below 64; no averaging); the head on the last state (``readout="last"``); batch
    ``min(16, max(4, N // 4))``; epochs so that training makes about 1500 updates, at
    least 30 and at most 300; Adam at 5e-3 with a cosine schedule; no augmentation, no
    validation cut, one network. Multivariate sets (D > 1) have each feature standardised
    over the training split when read (univariate UCR series are z-normalised by the
    archive already). The choices and the validation runs behind them are in
    ``docs/ucr.md``; every one can be overridden (``--patch``, ``--readout``,
    ``--augment``, ``--val-split``, ``--ensemble``, ...).
    """
    checks.positive_int(channels, "channels")
    batch = min(16, max(4, n_train // 4))
    per_epoch = -(-n_train // batch)
    epochs = min(300, max(30, -(-1500 // per_epoch)))
    return Task("classification", "gru", 64, epochs, batch, 5e-3, patch=max(1, steps // 32))


def _task(name) -> Task:
    if isinstance(name, str) and name.startswith(UCR_PREFIX):
        data = _ucr_raw(name[len(UCR_PREFIX):])
        return ucr_task(len(data.X_train), data.X_train.shape[1], data.input_size)
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; expected one of {list(TASKS)} or "
                         f"{UCR_PREFIX}NAME / {UCR_PREFIX}PATH")
    return TASKS[name]


def _pool(X, lengths, k: int):
    """Average ``k`` consecutive steps: (N, T, D) -> (N, T // k, D)."""
    if k == 1:
        return X, lengths
    N, T, D = X.shape
    T -= T % k
    X = X[:, :T].reshape(N, T // k, k, D).mean(axis=2)
    return X.astype(np.float32), (None if lengths is None else np.maximum(lengths // k, 1))


def load_task_data(task: str, *, patch=None, horizon: int = 1, pool: int | None = None):
    """The :class:`~rnnlab.data.series.Dataset` of ``task`` with its options applied.

    ``patch`` is ``(p, q)`` pixels for the image tasks, or for ``ucr:`` tasks the steps read
    as one (:func:`rnnlab.data.series.patches`; None for the set's rule, 1 for none; a patch
    given replaces the rule's averaging). ``pool`` overrides the task's averaging (a saved
    run's). Returns ``(dataset, options)``: ``options`` is the JSON record that recreates it
    (``{"patch", "horizon", "window", "pool"}``, as used).
    """
    spec = _task(task)
    series = task.startswith(UCR_PREFIX)
    if patch is not None and not (spec.images or series):
        raise ValueError(f"--patch applies to the image tasks (digits, fashion-mnist) and "
                         f"{UCR_PREFIX} tasks, not {task}")
    if horizon != 1 and spec.kind != "forecasting":
        raise ValueError(f"--horizon applies to forecasting (sunspots), not {task}")
    if series:
        if pool is None:
            pool = spec.pool if patch is None else 1
        patch = checks.positive_int(spec.patch if patch is None else patch, "patch")
    pool = checks.positive_int(spec.pool if pool is None else pool, "pool")
    options: dict = {"patch": patch if series or patch is None else list(patch),
                     "horizon": horizon,
                     "window": spec.window if spec.kind == "forecasting" else None,
                     "pool": pool}
    p = None if patch is None or series else tuple(patch)
    if task == "digits":
        from .data.images import digits
        data = digits(patch=p)
    elif task == "fashion-mnist":
        from .data.images import fashion_mnist
        data = fashion_mnist(patch=p)
    elif task == "japanese-vowels":
        from .data.speech import japanese_vowels
        data = japanese_vowels()
    elif task.startswith(UCR_PREFIX):
        data = _ucr_raw(task[len(UCR_PREFIX):])
    elif task == "gunpoint":
        from .data.series import gunpoint
        data = gunpoint()
    else:
        from .data.series import sunspots
        data = sunspots(window=spec.window, horizon=horizon)
    if pool != 1:
        from .data.series import Dataset
        X_tr, l_tr = _pool(data.X_train, data.lengths_train, pool)
        X_te, l_te = _pool(data.X_test, data.lengths_test, pool)
        meta = {**data.meta, "preprocessing": {**data.meta["preprocessing"], "pool": pool}}
        data = Dataset(X_tr, data.y_train, X_te, data.y_test, l_tr, l_te, meta)
    if series and patch != 1:
        from .data.series import Dataset, patches
        X_tr, l_tr = patches(data.X_train, data.lengths_train, patch)
        X_te, l_te = patches(data.X_test, data.lengths_test, patch)
        meta = {**data.meta, "preprocessing": {**data.meta["preprocessing"], "patch": patch}}
        data = Dataset(X_tr, data.y_train, X_te, data.y_test, l_tr, l_te, meta)
    return data, options


class NoisyTrainer(Trainer):
    """A :class:`~rnnlab.Trainer` that adds Gaussian noise of standard deviation ``noise`` to
    the real steps of every training batch (data augmentation; padded steps stay zero and
    :meth:`evaluate` sees the inputs unchanged). ``noise_seed`` seeds the noise.

    The noise comes in through the Trainer's batch hook :meth:`prepare_batch`, so full and
    truncated BPTT both see it: one draw per batch, shared by all of the batch's windows.
    Data-parallel, it is drawn for the global batch before the ranks take their rows, so
    every rank's rows get the noise one process would give them.
    """

    def __init__(self, net, *args, noise: float, noise_seed=0, **kwargs):
        super().__init__(net, *args, **kwargs)
        self.noise = checks.number(noise, "noise", low=0)
        self.noise_rng = np.random.default_rng(noise_seed)

    def prepare_batch(self, x, y, lengths):
        if self.parallel is not None:
            return x, y  # noised as a whole global batch, in _share
        # the noise first, then the Trainer's own hook (its augmentations), as in _share
        return super().prepare_batch(self._noisy(x, lengths), y, lengths)

    def _share(self, x, y, lengths, reset=None):
        # the rows of the global batch are taken here, once per batch, on every rank alike
        return super()._share(self._noisy(x, lengths), y, lengths, reset)

    def _noisy(self, x, lengths):
        if not self.noise:
            return x
        x = np.asarray(x, dtype=self.net.dtype)  # (B, T, D)
        e = self.noise * self.noise_rng.standard_normal(x.shape, dtype=x.dtype)
        if lengths is not None:
            real = np.arange(x.shape[1])[None, :] < np.asarray(lengths)[:, None]  # (B, T)
            e *= real[:, :, None]
        return x + e


def train_task(task: str, *, cell=None, hidden=None, layers=1, epochs=None, batch=None,
               lr=None, clip=1.0, seed=0, patch=None, horizon=1, noise=None, readout=None,
               window=None, out=None, progress=None, max_train=None, max_test=None,
               proj_size=0, peepholes=False, layer_norm=False, dropout=0.0,
               recurrent_dropout=0.0, zoneout=0.0, bidirectional=None, augment=None,
               val_split=None, patience=None, ensemble=None, tensorboard=None, echo=print,
               comm=None, precision="auto") -> Path:
    """Train a network on ``task`` and write a run folder; returns its path.

    Parameters
    ----------
    task : one of :data:`TASKS`, or ``"ucr:NAME"`` (a UCR/UEA set bundled with sktime, see
        :func:`rnnlab.data.series.ucr_names`) or ``"ucr:PATH"`` (a folder holding
        ``NAME_TRAIN.ts`` and ``NAME_TEST.ts``), with settings from :func:`ucr_task`
    cell, hidden, epochs, batch, lr : None for the task's defaults
    layers : int
    window : int or None
        Cell "ffnn" only: the inputs each step sees (None: 8).
    clip : float
        Global gradient-norm clip; 0 or None for none.
    seed : int
        Weights and shuffling.
    patch : (p, q), int or None
        Image tasks: p x q patches in raster order instead of rows. ``ucr:`` tasks: read
        this many consecutive steps as one (None: the set's rule, :func:`ucr_task`).
    horizon : int
        Sunspots: years forecast from each window.
    noise : float or None
        Standard deviation of the Gaussian noise added to the real steps of each training
        batch (:class:`NoisyTrainer`); None for the task's own (0 but for JapaneseVowels).
    readout : {"last", "mean", "max", "attention"} or None
        What the classifier's head reads (see :class:`rnnlab.Network`); None for the
        task's own ("last", or by :func:`ucr_task`'s rule).
    out : path or None
        Run folder (default ``runs/<task>-<time>``); must not hold a run already, nor be in
        use by another process (:func:`rnnlab.runlock.hold`).
    progress : bool or None
        Progress bar (None: when standard error is a terminal).
    max_train, max_test : int or None
        Use only the first N training / test sequences (smoke tests); the preprocessing is
        still the full split's. Saved, so :func:`evaluate_task` scores the same test slice.
    proj_size, peepholes : LSTM options (see :class:`rnnlab.LSTM`): a projection of
        each layer's output to ``proj_size`` units (0 for none), peephole connections
    layer_norm : LSTM and GRU option (see :class:`rnnlab.LSTM`): layer normalisation
    dropout, recurrent_dropout, zoneout : train-time regularization (see
        :class:`rnnlab.Network`): dropout between stacked layers (``layers`` >= 2),
        recurrent dropout on ``h`` in the recurrent product, zoneout (a rate, or a pair
        ``(z_h, z_c)`` for the LSTM); 0 for none. Saved in the config and the model file.
    bidirectional : bool or None
        Read each sequence both ways (:class:`rnnlab.Network`); None for the task's own.
    augment : str, list or None
        Augmentations of the training batches (:class:`rnnlab.data.augment.Augmenter`:
        ``"jitter,scale,slice,warp"``, strengths as ``name=value``), seeded from ``seed``;
        None for the task's own, ``""`` for none.
    val_split : float or None
        Hold out this share of the training split (stratified by class, seeded by ``seed``:
        :func:`validation_cut`) as validation; the parameters of the epoch with the best
        validation loss are kept. None for the task's own, 0 for none.
    patience : int or None
        With a validation cut: stop after this many epochs without a better validation
        loss (None: train all epochs, still keeping the best).
    ensemble : int or None
        Train this many networks, seeds ``seed``, ``seed + 1``, ... (the validation cut is
        the same for all), and score their averaged class probabilities. The members are
        plain model files: ``model.rnnlab`` (the first), ``model-1.rnnlab``, ...; their
        logs ``metrics.jsonl``, ``metrics-1.jsonl``, ... None for the task's own (1).
    tensorboard : path or None
        Also write TensorBoard event files to this folder (``Trainer(tensorboard_dir=)``),
        with ten gradient-flow recordings on the first 4 training sequences.
    echo : callable for the one-line summaries (``print``)
    precision : "fp32", "bf16" or "auto" (bf16 where the CPU has BF16 instructions; see
        :func:`rnnlab.engine.resolved_precision`); recorded in ``run.json``
    comm : as :class:`rnnlab.Trainer`'s: under ``mpiexec -n N`` each rank trains its share
        of every global batch of ``batch`` sequences (the parameters one process would
        get), and rank 0 alone writes the run folder; ``run.json`` records ``"ranks": N``
    """
    from .optim import cosine

    spec = _task(task)
    cell = spec.cell if cell is None else cell
    hidden = checks.positive_int(spec.hidden if hidden is None else hidden, "hidden")
    layers = checks.positive_int(layers, "layers")
    epochs = checks.positive_int(spec.epochs if epochs is None else epochs, "epochs")
    batch = checks.positive_int(spec.batch if batch is None else batch, "batch")
    horizon = checks.positive_int(horizon, "horizon")
    lr = spec.lr if lr is None else lr
    noise = spec.noise if noise is None else noise
    readout = checks.choice(spec.readout if readout is None else readout, "readout",
                            ("last", "mean", "max", "attention"))
    checks.number(noise, "noise", low=0)
    checks.positive_number(lr, "lr")
    checks.optional(checks.number, clip, "clip", low=0)
    checks.integer(seed, "seed", minimum=0)
    checks.optional(checks.positive_int, max_train, "max_train")
    checks.optional(checks.positive_int, max_test, "max_test")
    bidirectional = checks.boolean(spec.bidirectional if bidirectional is None
                                   else bidirectional, "bidirectional")
    augment = spec.augment if augment is None else augment
    if augment:
        from .data.augment import parse_augment

        parse_augment(augment)
    val_split = spec.val_split if val_split is None else val_split
    if val_split:
        checks.number(val_split, "val_split", low=0, high=1, high_open=True)
    checks.optional(checks.positive_int, patience, "patience")
    if patience is not None and not val_split:
        raise ValueError("patience needs a validation cut: give val_split (--val-split)")
    ensemble = checks.positive_int(spec.ensemble if ensemble is None else ensemble, "ensemble")
    variant = {"proj_size": checks.integer(proj_size, "proj_size", minimum=0),
               "peepholes": checks.boolean(peepholes, "peepholes"),
               "layer_norm": checks.boolean(layer_norm, "layer_norm")}
    variant = {k: v for k, v in variant.items() if v}
    zoneout = list(zoneout) if isinstance(zoneout, (list, tuple)) else zoneout
    variant.update({k: v for k, v in (("dropout", dropout), ("zoneout", zoneout),
                                      ("recurrent_dropout", recurrent_dropout))
                    if (any(v) if isinstance(v, list) else v)})
    precision = checks.choice(precision, "precision", engine.PRECISIONS)
    if tensorboard is not None:  # the extra and the folder, before anything is written
        from .tensorboard import check_logdir

        check_logdir(tensorboard)
    dp = parallel.DataParallel.of(comm)
    root = dp is None or dp.root
    if not root:  # one voice and one writer: rank 0's
        echo, progress = (lambda *a, **k: None), False
    failure = None
    if root:
        try:
            label = task if not task.startswith(UCR_PREFIX) else "ucr-" + Path(task[4:]).name
            out = io.check_folder(out if out is not None else Path("runs") / (
                f"{label}-{time.strftime('%Y%m%d-%H%M%S')}"))
        except ValueError as e:
            failure = str(e)
    if dp is not None:  # rank 0's folder (its name has rank 0's clock in it), or its error
        out, failure = dp.comm.bcast((out, failure))
    if failure is not None:
        raise ValueError(failure)
    with runlock.hold(out) if root else contextlib.nullcontext():  # one writer per folder
        held = root and (out / "run.json").exists()
        if dp is not None:
            held = dp.comm.bcast(held)
        if held:
            raise ValueError(f"{out} already holds a run; give another --out")

        data, options = load_task_data(task, patch=patch, horizon=horizon)
        if max_train is not None or max_test is not None:
            data = data.head(max_train or len(data.X_train), max_test or len(data.X_test))
        options.update(max_test=max_test, max_train=max_train)
        forecasting = spec.kind == "forecasting"
        X, y, lengths = data.X_train, data.y_train, data.lengths_train
        validation = None
        if val_split:
            keep, cut = validation_cut(y, val_split, [seed, 3])
            validation = (X[cut], y[cut], None if lengths is None else lengths[cut])
            X, y, lengths = X[keep], y[keep], None if lengths is None else lengths[keep]
        members = [f"model-{i}.rnnlab" if i else "model.rnnlab" for i in range(ensemble)]
        options.update(val_split=val_split or None, ensemble=ensemble, members=members)
        total = epochs * -(-len(X) // batch)
        net_options = dict(cell=cell, num_layers=layers,
                           output="linear" if forecasting else "softmax", readout=readout,
                           window=window, bidirectional=bidirectional, precision=precision,
                           **variant)
        nets = [Network(data.input_size, hidden, data.output_size, seed=seed + i,
                        **net_options) for i in range(ensemble)]
        computes = engine.precision_record(precision)
        if precision == "bf16" and computes["computes_in"] != "bf16":
            echo(f"rnnlab: {engine.BF16_ABSENT}")
        config = {"task": task, "cell": cell, "hidden": hidden, "layers": layers,
                  **({"window": nets[0].config["window"]} if "window" in nets[0].config
                     else {}),
                  "bidirectional": bidirectional,
                  "epochs": epochs, "batch": batch, "lr": lr, "clip": clip or None, "seed": seed,
                  "readout": readout,
                  "optimizer": "adam", "schedule": f"cosine from {lr} to 0 over {total} updates",
                  "input_noise": noise or None, "precision": precision,
                  "augment": augment or None, "patience": patience,
                  "seeds": [seed + i for i in range(ensemble)], **variant, **options}
        if root:
            (out / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
        ranks = 1 if dp is None else dp.size
        echo(f"{task}: {data!r}, {data.X_train.shape[1]} steps of {data.input_size}; "
             f"{cell} H={hidden}, {epochs} epochs" + (f", {ranks} ranks" if ranks > 1 else "")
             + (f", {len(validation[0])} held out for validation" if validation else "")
             + (f", {ensemble} seeds" if ensemble > 1 else "") + f" -> {out}")
        fits, t0 = [], time.perf_counter()
        for i, net in enumerate(nets):
            s_i = seed + i
            trainer = NoisyTrainer(
                net, "adam", lr=lr, clip_norm=clip or None, batch_size=batch, seed=s_i,
                schedule=cosine(lr, total),
                log=out / ("metrics.jsonl" if i == 0 else f"metrics-{i}.jsonl"),
                progress=progress, noise=noise, noise_seed=[s_i, 1],
                augment=None if not augment else Augmenter(augment, seed=[s_i, 2],
                                                           patch=options["patch"] or 1),
                # with a validation cut: the best epoch's parameters are kept (patience
                # None: never stop early, still keep the best)
                patience=None if validation is None else (patience or epochs),
                comm=dp if dp is not None else False,
                tensorboard_dir=tensorboard if root and i == 0 else None,
                diagnostics_every=None if tensorboard is None or i else max(1, total // 10))
            watch = contextlib.ExitStack()
            if dp is not None:  # a rank that dies: one line, whoever can still write it
                watch.enter_context(dp.witnessed(out, resumes=False))
                watch.enter_context(dp.watched())
            with watch:
                fits.append(trainer.fit(X, y, epochs=epochs, lengths=lengths,
                                        validation=validation))
        seconds = time.perf_counter() - t0
        if not root:
            return out
        for net, name in zip(nets, members, strict=True):
            net.save(out / name)
        history = fits[0]
        results = {"train_loss": history.train_loss[-1], "epochs": len(history.epoch),
                   "steps": history.steps, "seconds": round(seconds, 3)}
        if validation is not None:
            results.update(best_epoch=[h.best_epoch for h in fits],
                           val_loss=[min(v for v in h.val_loss) for h in fits],
                           n_val=len(validation[0]))
            if not forecasting:
                vdata = type(data)(X, y, validation[0], validation[1], lengths, validation[2],
                                   data.meta)
                results["val_accuracy"] = _score(nets, vdata, False)[0]["accuracy"]
        tested = _score(nets, data, forecasting)[0]
        results.update(tested)
        from .environment import environment

        info = {"format": TASK_FORMAT, "version": TASK_VERSION, "rnnlab": __version__,
                "task": task, "ranks": ranks, "options": options, "meta": data.meta,
                "results": results, "precision": computes, "environment": environment()}
        io.write_json(out / "run.json", info)
        try:
            from .plots import plot_loss
            curves = {"training": history.train_loss}
            if validation is not None:
                curves["validation"] = history.val_loss
            plot_loss(curves, out / "loss.png", xlabel="epoch",
                      title=f"{task}: {cell} H={hidden}")
        except ImportError:
            pass  # plotting is optional: the numbers are in metrics.jsonl
        echo(f"{task}: {_summary(results)}; training {seconds:.1f} s; wrote {out}")
    return out


def validation_cut(y, fraction: float, seed) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(keep, held)`` that split a training set into training and validation.

    Class labels ``y`` (N,) are cut per class (stratified): of a class of n series,
    ``round(fraction * n)`` go to validation, at least one and at most n - 1 (a class of
    one stays in training); targets of another shape are cut at random as a whole. Seeded
    by ``seed`` (``numpy.random.default_rng``); both index arrays sorted.
    """
    fraction = checks.number(fraction, "val_split", low=0, high=1, low_open=True,
                             high_open=True)
    rng = np.random.default_rng(seed)
    y = np.asarray(y)
    groups = ([np.flatnonzero(y == c) for c in np.unique(y)] if y.ndim == 1
              else [np.arange(len(y))])
    held = []
    for idx in groups:
        n = len(idx)
        k = min(max(round(fraction * n), 1), n - 1) if n > 1 else 0
        held.append(rng.permutation(idx)[:k])
    held = np.sort(np.concatenate(held)).astype(np.int64)
    if len(held) == 0:
        raise ValueError(f"val_split={fraction} leaves no series for validation out of "
                         f"{len(y)}")
    keep = np.setdiff1d(np.arange(len(y)), held)
    return keep, held


def _predict(net, X, lengths, chunk: int = 1000) -> np.ndarray:
    return np.concatenate([net.predict(X[i:i + chunk], lengths=None if lengths is None
                                       else lengths[i:i + chunk])
                           for i in range(0, len(X), chunk)])


def _score(nets, data, forecasting: bool) -> tuple[dict, dict]:
    """Test results (JSON) and arrays for the plots, of one network or an ensemble (a list:
    class probabilities, or forecasts, averaged over the members)."""
    nets = nets if isinstance(nets, list) else [nets]
    preds = [_predict(net, data.X_test, data.lengths_test) for net in nets]
    pred = np.mean(preds, axis=0)
    if not forecasting:
        guess = pred.argmax(1)
        K = len(data.meta["classes"])
        matrix = np.zeros((K, K), dtype=np.int64)
        np.add.at(matrix, (data.y_test, guess), 1)
        results = {"accuracy": float(np.mean(guess == data.y_test)), "n_test": len(guess)}
        if len(nets) > 1:
            results["member_accuracy"] = [float(np.mean(p.argmax(1) == data.y_test))
                                          for p in preds]
        return results, {"matrix": matrix}
    from .data.series import unscale
    forecast, truth = unscale(pred, data.meta), unscale(data.y_test, data.meta)  # (N, K)
    last = unscale(data.X_test[:, -1, 0], data.meta)[:, None]  # persistence: last seen year
    rmse = float(np.sqrt(np.mean((forecast - truth) ** 2)))
    persistence = float(np.sqrt(np.mean((last - truth) ** 2)))
    return ({"rmse": rmse, "persistence_rmse": persistence, "n_test": len(pred),
             "horizon": int(data.y_test.shape[1]), "units": "sunspot number"},
            {"forecast": forecast, "truth": truth})


def _summary(r: dict) -> str:
    if "accuracy" in r:
        return f"test accuracy {r['accuracy']:.4f} on {r['n_test']} sequences"
    return (f"test RMSE {r['rmse']:.2f} (persistence {r['persistence_rmse']:.2f}) in "
            f"{r['units']}s over {r['n_test']} windows, horizon {r['horizon']}")


def open_task_run(path) -> dict:
    """The ``run.json`` of a task run folder (ValueError if it is not one)."""
    return io.read_run_info(path, TASK_FORMAT, TASK_VERSION, "task run folder")


def score_test(run) -> dict:
    """Score a task run's model on its test split, writing nothing.

    Returns ``{"info", "data", "net", "results", "arrays"}``: the run's ``run.json``, the
    test data (prepared from the saved options, the preprocessing checked against the
    saved one), the network, the results (as :func:`evaluate_task`'s, without ``plot``) and
    the arrays behind the plot: ``matrix`` (K, K) of counts (rows: true class), or
    ``forecast``, ``truth`` (N, horizon) in the series' units and ``years`` (N,). An
    ensemble's run (``--ensemble K``) is scored on its members' averaged probabilities;
    ``net`` is its first member.
    """
    run = Path(run)
    info = open_task_run(run)
    task, options = info["task"], info["options"]
    patch = options.get("patch")
    if patch is None and task.startswith(UCR_PREFIX):
        patch = 1  # a series run saved before patches existed read its steps one by one
    data, _ = load_task_data(task, patch=patch if patch is None or isinstance(patch, int)
                             else tuple(patch), horizon=options.get("horizon", 1),
                             pool=options.get("pool"))
    if data.meta.get("preprocessing") != info["meta"].get("preprocessing"):
        raise ValueError(f"{run}: the data source now gives other preprocessing statistics "
                         f"than the run saved; the data changed since training")
    if options.get("max_test") is not None:
        data = data.head(len(data.X_train), options["max_test"])
    nets = [load(run / name) for name in options.get("members", ["model.rnnlab"])]
    for n in nets:  # scored as trained (a model file keeps no precision; older runs: fp32)
        n.precision = info.get("precision", {}).get("asked", "fp32")
    net = nets[0]
    forecasting = _task(task).kind == "forecasting"
    results, arrays = _score(nets, data, forecasting)
    if forecasting:
        arrays["years"] = data.meta["target_years_test"][:len(arrays["truth"])]
    return {"info": info, "data": data, "net": net, "results": results, "arrays": arrays}


def evaluate_task(run) -> dict:
    """Score a task run on its test split and write its plot.

    Returns ``{"task", "accuracy", "n_test", "plot"}`` for classification (``plot`` is
    ``RUN/confusion.png``) or ``{"task", "rmse", "persistence_rmse", "horizon", "n_test",
    "units", "plot"}`` for forecasting (``RUN/forecast.png``; RMSE in sunspot numbers).
    """
    run = Path(run)
    s = score_test(run)
    info, results, arrays = s["info"], s["results"], s["arrays"]
    task = info["task"]
    if "forecast" in arrays:
        plot = plot_forecast(arrays["years"], arrays["truth"][:, 0], arrays["forecast"][:, 0],
                             run / "forecast.png",
                             title=f"sunspots, one year ahead: RMSE {results['rmse']:.1f} "
                                   f"(persistence {results['persistence_rmse']:.1f})")
    else:
        plot = plot_confusion(arrays["matrix"], info["meta"]["classes"], run / "confusion.png",
                              title=f"{task}: accuracy {results['accuracy']:.4f} "
                                    f"({results['n_test']} test sequences)")
    return {"task": task, **results, "plot": str(plot)}


# ----------------------------------------------------------------------------------------
# plots (matplotlib's object API on an Agg canvas, as rnnlab.plots)
# ----------------------------------------------------------------------------------------


def plot_confusion(matrix, labels, path, *, title: str | None = None) -> Path:
    """A confusion matrix (rows: true class, columns: predicted) as a PNG heat map with the
    counts written in the cells.

    Parameters
    ----------
    matrix : array (K, K) of counts
    labels : K class names
    path : str or Path, a ``.png`` file
    """
    from .plots import figure, png_path, save_figure

    path = png_path(path)
    m = np.asarray(matrix)
    labels = [str(c) for c in labels]
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] != len(labels):
        raise ValueError(f"matrix must be (K, K) with K = {len(labels)} labels, got {m.shape}")
    K = len(labels)
    longest = max(map(len, labels))
    side = min(3.0 + 0.4 * K, 10.0)
    margin = 0.6 + 0.075 * longest  # inches for the tick labels and the axis title
    width, height = side + margin + 1.9, side + margin + 0.5
    fig = figure((width, height))
    fig.subplots_adjust(left=margin / width, right=1 - 0.8 / width,
                        bottom=margin / height, top=1 - 0.45 / height)
    ax = fig.add_subplot()
    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros(m.shape), where=rows > 0)  # colour: row share
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    if K <= 30:
        for i in range(K):
            for j in range(K):
                if m[i, j]:
                    ax.text(j, i, str(int(m[i, j])), ha="center", va="center", fontsize=8,
                            color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(K), labels, rotation=45 if longest > 2 else 0,
                  ha="right" if longest > 2 else "center", rotation_mode="anchor")
    ax.set_yticks(range(K), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "Confusion matrix")
    return save_figure(fig, path)


def plot_forecast(years, observed, forecast, path, *, title: str | None = None) -> Path:
    """Observed values and forecasts against the year, as a PNG.

    Parameters
    ----------
    years : N years (the forecasts' target years)
    observed, forecast : N values each, in the series' units
    path : str or Path, a ``.png`` file
    """
    from .plots import figure, png_path, save_figure

    path = png_path(path)
    x = np.asarray(years, dtype=np.float64)
    obs = np.asarray(observed, dtype=np.float64)
    fc = np.asarray(forecast, dtype=np.float64)
    if not (x.ndim == obs.ndim == fc.ndim == 1 and len(x) == len(obs) == len(fc) > 0):
        raise ValueError(f"years, observed and forecast must be 1-D of one non-zero length, "
                         f"got shapes {x.shape}, {obs.shape}, {fc.shape}")
    fig = figure((8.0, 4.2))
    ax = fig.add_subplot()
    ax.plot(x, obs, color="black", lw=1.6, marker="o", ms=3, label="observed")
    ax.plot(x, fc, color="tab:red", lw=1.6, ls="--", marker="s", ms=3, label="forecast")
    ax.set_xlabel("year")
    ax.set_ylabel("sunspot number")
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title(title or "Forecast")
    return save_figure(fig, path)
