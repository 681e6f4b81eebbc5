"""The training loop: mini-batches, BPTT schedule, clipping, optimiser, checkpoints, logs.

Shape legend: N sequences, B batch, T time, D input features, K outputs.

One update is always the same linear story::

    loss, grads  <- forward + backward (full or truncated BPTT, :mod:`rnnlab.bptt`)
    guard        <- stop (or skip) on NaN/Inf in the loss or a gradient
    norm         <- clip (by global norm or by value), norm before clipping logged
    params       <- optimiser step (learning rate from the schedule)

and it lives in :meth:`Trainer.train_step`, so anything that produces gradients (for
example a data-parallel all-reduce) slots in before the clip.
"""

from __future__ import annotations

import json
import math
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import bptt, checks, clip, io, optim
from .progress import Progress

CHECKPOINT_FORMAT = "rnnlab-checkpoint"
CHECKPOINT_VERSION = 1


class NonFiniteError(FloatingPointError):
    """A NaN or Inf appeared in the loss or a gradient; the parameters were not updated."""

    def __init__(self, step: int, where: str):
        self.step, self.where = step, where
        super().__init__(f"non-finite value in {where} at step {step}; "
                         "training stopped with the last good parameters kept")


@dataclass
class History:
    """What :meth:`Trainer.fit` learned along the way (one entry per epoch unless noted)."""

    epoch: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)  # mean over the epoch's updates
    val_loss: list = field(default_factory=list)  # None without validation data
    grad_norm: list = field(default_factory=list)  # mean norm before clipping
    clip_rate: list = field(default_factory=list)  # fraction of updates that were clipped
    seconds: list = field(default_factory=list)  # wall time of the epoch
    steps: int = 0  # updates made in all
    skipped: int = 0  # updates skipped for NaN/Inf (on_nonfinite="skip")
    best_epoch: int | None = None
    stopped_early: bool = False
    interrupted: bool = False
    # with diagnostics_every: one entry per recording (update 0, N, 2N, ...), not per epoch
    flow: list = field(default_factory=list)  # (step, relative flow (T,) as a list)
    memory_length: list = field(default_factory=list)  # (step, lag where flow < 1 % of lag 0)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class StepInfo:
    loss: float
    grad_norm: float
    clipped: bool
    skipped: bool


class Trainer:
    """Trains a :class:`~rnnlab.Network`.

    Parameters
    ----------
    net : rnnlab.Network
    optimizer : {"adam", "adamw", "sgd", "rmsprop", "adagrad"} or an ``rnnlab.optim.Optimizer``
    lr : float
        Learning rate (the peak, when a schedule is given).
    clip_norm : float or None
        Rescale the gradient when its global L2 norm exceeds this.
    clip_value : float or None
        Clip each gradient entry to ``[-clip_value, clip_value]`` (after ``clip_norm``).
    bptt_steps : None, int k or pair (k1, k2)
        None: full BPTT over whole sequences. k: truncated BPTT(k, k). (k1, k2): update after
        every k1 steps with gradients truncated to k2 steps (see :mod:`rnnlab.bptt`).
    batch_size : int
    seed : int
        Shuffling order: epoch e uses ``np.random.default_rng([seed, e])``.
    schedule : callable step -> lr, optional (see :mod:`rnnlab.schedules`)
    on_nonfinite : {"stop", "skip"}
        A NaN or Inf in the loss or gradient stops training (:class:`NonFiniteError`, the
        last good parameters kept) or skips that batch and counts it.
    checkpoint : path or None
        Where to write checkpoints (atomically): every ``checkpoint_every`` updates, at the
        end of each epoch, and on Ctrl-C.
    checkpoint_every : int or None
    log : path or None
        JSON-lines metrics: one line per ``log_every`` updates and one per epoch.
    log_every : int
    patience : int or None
        Early stopping: stop after this many epochs without a better validation loss, and
        restore the best parameters.
    progress : bool or None
        A progress bar on standard error; None shows it only when that is a terminal.
    diagnostics_every : int or None
        Record the gradient flow every this many updates (and once before the first): the
        relative flow of the top layer on ``diagnostics_probe``
        (:func:`rnnlab.diagnostics.gradient_flow`), its memory length at 1 % and the
        recurrent spectral radii. Each recording is a log line
        ``{"step", "flow", "memory_length", "spectral_radius"}`` and an entry of
        ``History.flow`` and ``History.memory_length``; draw them with
        :func:`rnnlab.plots.plot_flow_heatmap`. It costs about H backward passes over the
        probe (no weight gradients), so keep the probe small.
    diagnostics_probe : array (b, T, D) or None
        Input for the recordings; default the first 4 training sequences (with their
        lengths).
    **optimizer_options
        Passed to the optimiser (``momentum``, ``weight_decay``, ...).
    """

    def __init__(self, net, optimizer="adam", lr=1e-3, clip_norm=None, bptt_steps=None,
                 batch_size=32, seed=0, *, clip_value=None, schedule=None,
                 on_nonfinite="stop", checkpoint=None, checkpoint_every=None, log=None,
                 log_every=10, patience=None, progress=None, diagnostics_every=None,
                 diagnostics_probe=None, **optimizer_options):
        self.net = net
        self.optimizer_name = optimizer if isinstance(optimizer, str) else optimizer.name
        self.opt = (optim.make_optimizer(optimizer, lr=lr, **optimizer_options)
                    if isinstance(optimizer, str) else optimizer)
        self.lr = lr
        self.clip_norm, self.clip_value = clip_norm, clip_value
        self.bptt = bptt.parse_bptt(bptt_steps)
        self.batch_size = checks.positive_int(batch_size, "batch_size")
        self.seed = seed
        self.schedule = schedule
        self.on_nonfinite = checks.choice(on_nonfinite, "on_nonfinite", ("stop", "skip"))
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.checkpoint_every = (None if checkpoint_every is None
                                 else checks.positive_int(checkpoint_every, "checkpoint_every"))
        self.log = None if log is None else Path(log)
        self.log_every = checks.positive_int(log_every, "log_every")
        self.patience = None if patience is None else checks.positive_int(patience, "patience")
        self.progress = progress
        self.diagnostics_every = (None if diagnostics_every is None else
                                  checks.positive_int(diagnostics_every, "diagnostics_every"))
        self.diagnostics_probe = diagnostics_probe
        for name, v in (("clip_norm", clip_norm), ("clip_value", clip_value)):
            if v is not None and not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be a positive number or None, got {v!r}")
        self.step_count = 0
        self.skipped = 0

    # one update ---------------------------------------------------------------------------
    def current_lr(self) -> float:
        return self.lr if self.schedule is None else float(self.schedule(self.step_count))

    def apply(self, loss: float, grads: dict) -> StepInfo:
        """Guard, clip and apply gradients that something else computed: one update."""
        bad = _first_nonfinite(loss, grads)
        if bad is not None:
            if self.on_nonfinite == "stop":
                raise NonFiniteError(self.step_count, bad)
            self.skipped += 1
            return StepInfo(loss, float("nan"), False, True)
        norm = clip.global_norm(grads)
        clipped = False
        if self.clip_norm is not None and norm > self.clip_norm:
            clip.clip_by_global_norm(grads, self.clip_norm)
            clipped = True
        if self.clip_value is not None:
            clipped |= clip.clip_by_value(grads, self.clip_value) > self.clip_value
        self.opt.step(self.net.params, grads, lr=self.current_lr())
        self.step_count += 1
        return StepInfo(loss, norm, clipped, False)

    def train_step(self, x, y, *, lengths=None, state=None):
        """Full BPTT on one batch and one update. Returns ``(StepInfo, final state)``."""
        res = self.net.loss_and_grad(x, y, lengths=lengths, state=state)
        return self.apply(res.loss, res.grads), res.state

    # the loop -----------------------------------------------------------------------------
    def fit(self, X, Y, *, epochs=1, validation=None, lengths=None, resume=None) -> History:
        """Train on ``X`` (N, T, D) with targets ``Y`` for ``epochs`` passes.

        Parameters
        ----------
        X : array (N, T, D)
        Y : labels (N, T) or (N,) for softmax (readout all / last); values (N, T, K) or
            (N, K) for linear
        epochs : int
        validation : (Xv, Yv) or (Xv, Yv, lengths_v), optional; its loss is in the history
        lengths : (N,) real steps per sequence, optional
        resume : path of a checkpoint written by this trainer's configuration; training
            continues exactly where it stopped

        Returns
        -------
        History
        """
        X, Y, lengths = self._check_data(X, Y, lengths, "X", "Y")
        epochs = checks.positive_int(epochs, "epochs")
        val = None
        if validation is not None:
            if not isinstance(validation, (tuple, list)) or len(validation) not in (2, 3):
                raise ValueError("validation must be a tuple (Xv, Yv) or (Xv, Yv, lengths_v)")
            val = self._check_data(validation[0], validation[1],
                                   validation[2] if len(validation) == 3 else None, "Xv", "Yv")
        probe = self._check_probe(X, lengths)
        N = len(X)
        n_batches = -(-N // self.batch_size)
        history = History()
        pos = {"epoch": 0, "batch": 0, "window": 0}
        carried: list = []  # states of an unfinished truncated-BPTT batch
        best = None
        if resume is not None:
            pos, carried, history, best = self._load_checkpoint(resume)
        self._log_file = None if self.log is None else self.log.open("a", encoding="utf-8")
        interrupted = []
        old_handler = _install_sigint(interrupted)
        bar = Progress(total=epochs * n_batches, enabled=self.progress,
                       done=pos["epoch"] * n_batches + pos["batch"])
        try:
            if probe is not None and self.step_count == 0:
                self._record_flow(probe, history)  # the starting point, before any update
            for epoch in range(pos["epoch"], epochs):
                perm = np.random.default_rng([self.seed, epoch]).permutation(N)
                t0 = time.perf_counter()
                losses, norms, clips = [], [], []
                start_batch = pos["batch"] if epoch == pos["epoch"] else 0
                for b in range(start_batch, n_batches):
                    idx = perm[b * self.batch_size:(b + 1) * self.batch_size]
                    x, y = X[idx], Y[idx]
                    lb = None if lengths is None else lengths[idx]
                    start_window = pos["window"] if (epoch, b) == (pos["epoch"], pos["batch"]) \
                        else 0
                    for info, window, states in self._batch_updates(x, y, lb, start_window,
                                                                    carried):
                        carried = []
                        # where to resume: the next window of this batch, or the next batch
                        here = ({"epoch": epoch, "batch": b + 1, "window": 0} if window is None
                                else {"epoch": epoch, "batch": b, "window": window})
                        if not info.skipped:
                            losses.append(info.loss)
                            norms.append(info.grad_norm)
                            clips.append(info.clipped)
                        self._log_step(epoch, info)
                        if (probe is not None and not info.skipped
                                and self.step_count % self.diagnostics_every == 0):
                            self._record_flow(probe, history)
                        bar.update(0, loss=info.loss)
                        if interrupted:
                            self._save_checkpoint(here, states, history, best)
                            raise KeyboardInterrupt
                        if self.checkpoint_every and self.step_count % self.checkpoint_every == 0:
                            self._save_checkpoint(here, states, history, best)
                    bar.update(1)
                history.epoch.append(epoch + 1)
                history.train_loss.append(float(np.mean(losses)) if losses else None)
                history.grad_norm.append(float(np.mean(norms)) if norms else None)
                history.clip_rate.append(float(np.mean(clips)) if clips else 0.0)
                history.seconds.append(time.perf_counter() - t0)
                vloss = None if val is None else self.evaluate(*val)
                history.val_loss.append(vloss)
                history.steps, history.skipped = self.step_count, self.skipped
                stop = False
                if vloss is not None and (best is None or vloss < best[0]):
                    best = (vloss, epoch + 1, {k: v.copy() for k, v in self.net.params.items()})
                    history.best_epoch = epoch + 1
                elif (vloss is not None and self.patience is not None
                      and epoch + 1 - best[1] >= self.patience):
                    history.stopped_early = stop = True
                self._log({"epoch": epoch + 1, "train_loss": history.train_loss[-1],
                           "val_loss": vloss, "clip_rate": history.clip_rate[-1],
                           "grad_norm": history.grad_norm[-1], "seconds": history.seconds[-1]})
                bar.note(f"epoch {epoch + 1}: loss {history.train_loss[-1]:.4f}"
                         + ("" if vloss is None else f", validation {vloss:.4f}"))
                if self.checkpoint is not None:
                    self._save_checkpoint({"epoch": epoch + 1, "batch": 0, "window": 0}, [],
                                          history, best)
                if stop:
                    break
        except KeyboardInterrupt:
            history.interrupted = True
            raise
        finally:
            bar.close()
            _restore_sigint(old_handler)
            if self._log_file is not None:
                self._log_file.close()
        if best is not None and self.patience is not None:
            for k, v in best[2].items():
                self.net.params[k][...] = v
        return history

    def _batch_updates(self, x, y, lengths, start_window, carried):
        """Yield ``(StepInfo, next window or None when the batch is done, states)``."""
        if self.bptt is None:
            info, _ = self.train_step(x, y, lengths=lengths)
            yield info, None, []
            return
        k1, k2 = self.bptt
        tb = bptt.Truncated(self.net, x, y, lengths, k1, k2, position=start_window)
        if carried:
            tb.state = _unflatten_state(self.net, carried[0])
            for i, h in enumerate(carried[1:]):
                w = start_window - len(carried) + 1 + i
                a, b = w * k1, min((w + 1) * k1, tb.T)
                tb.history.append((x[:, a:b], bptt.window_lengths(lengths, a, b),
                                   _unflatten_state(self.net, h)))
        for res in tb:
            info = self.apply(res.loss, res.grads)
            done = tb.position >= tb.n_windows
            states = [] if done else [_flatten_state(tb.state)] + [
                _flatten_state(h[2]) for h in tb.history]
            yield info, (None if done else tb.position), states

    def evaluate(self, X, Y, lengths=None) -> float:
        """Mean loss over all real positions, in batches, without updating anything."""
        total, count = 0.0, 0
        chunk = 256
        for i in range(0, len(X), chunk):
            xb, yb = X[i:i + chunk], Y[i:i + chunk]
            lb = None if lengths is None else lengths[i:i + chunk]
            n = int(lb.sum()) if (lb is not None and self.net.readout == "all") else (
                len(xb) * (xb.shape[1] if self.net.readout == "all" else 1))
            total += self.net.loss(xb, yb, lengths=lb) * n
            count += n
        return total / max(count, 1)

    # gradient-flow recordings -------------------------------------------------------------
    def _check_probe(self, X, lengths):
        """``(x, lengths)`` for the recordings, or None when they are off."""
        if self.diagnostics_every is None:
            return None
        if self.diagnostics_probe is None:
            return X[:4], None if lengths is None else lengths[:4]
        x = np.asarray(self.diagnostics_probe)
        if x.ndim != 3 or x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"diagnostics_probe must be a non-empty array (b, T, "
                             f"{self.net.rnn.input_size}), got shape {x.shape}")
        return checks.array(x, "diagnostics_probe", (None, None, self.net.rnn.input_size),
                             self.net.dtype), None

    def _record_flow(self, probe, history: History) -> None:
        from . import diagnostics  # imported here: training without recordings never needs it

        x, lengths = probe
        flow = diagnostics.gradient_flow(self.net, x, lengths=lengths, relative=True)
        mem = diagnostics.memory_length(flow, 0.01)
        # JSON has no Inf or NaN (an overflowing flow): those become null
        values = [float(v) if math.isfinite(v) else None for v in flow]
        history.flow.append((self.step_count, values))
        history.memory_length.append((self.step_count, mem))
        self._log({"step": self.step_count, "flow": values, "memory_length": mem,
                   "spectral_radius": diagnostics.spectral_radius(self.net)})

    # data checks --------------------------------------------------------------------------
    def _check_data(self, X, Y, lengths, xname, yname):
        net = self.net
        X = np.asarray(X)
        if X.ndim != 3 or X.shape[0] == 0 or X.shape[1] == 0:
            raise ValueError(f"{xname} must be a non-empty array (N, T, {net.rnn.input_size}), "
                             f"got shape {X.shape}")
        X = checks.array(X, xname, (None, None, net.rnn.input_size), net.dtype)
        Y = np.asarray(Y)
        if len(Y) != len(X):
            raise ValueError(f"{xname} holds {len(X)} sequences but {yname} holds {len(Y)}")
        if lengths is not None:
            lengths = checks.lengths(lengths, len(X), X.shape[1])
        # the network checks shape and range of the targets; do it once, up front
        z_shape = (len(X),) + ((X.shape[1],) if net.readout == "all" else ()) + (net.output_size,)
        net.check_targets(Y, z_shape, lengths)
        return X, Y, lengths

    # logs and checkpoints -------------------------------------------------------------------
    def _log(self, record: dict):
        if self._log_file is not None:
            self._log_file.write(json.dumps(record) + "\n")
            self._log_file.flush()

    def _log_step(self, epoch, info: StepInfo):
        if self.step_count % self.log_every == 0 or info.skipped:
            self._log({"step": self.step_count, "epoch": epoch + 1, "loss": info.loss,
                       "grad_norm": info.grad_norm, "clipped": bool(info.clipped),
                       "skipped": info.skipped, "lr": self.current_lr()})

    def _trainer_config(self) -> dict:
        return {"optimizer": self.optimizer_name, "lr": self.lr, "clip_norm": self.clip_norm,
                "clip_value": self.clip_value, "bptt": self.bptt, "batch_size": self.batch_size,
                "seed": self.seed}

    def save_checkpoint(self, path, *, states=(), extra: dict | None = None) -> None:
        """Write parameters, optimiser state and the update count to ``path`` atomically.

        For loops of one's own (e.g. :mod:`rnnlab.lm`): ``states`` is a list of carried
        states, each a list of arrays; ``extra`` any JSON-serialisable record (data
        position, timers). :meth:`load_checkpoint` gives both back.
        """
        self._write(Path(path), {"epoch": 0, "batch": 0, "window": 0}, list(states),
                    History(), None, extra)

    def load_checkpoint(self, path):
        """Restore parameters, optimiser state and update count; returns ``(extra, states)``."""
        _, states, _, _ = self._load_checkpoint(path)
        return self._loaded_extra, states

    def _save_checkpoint(self, pos, states, history, best):
        if self.checkpoint is not None:
            self._write(self.checkpoint, pos, states, history, best)

    def _write(self, path, pos, states, history, best, extra=None):
        if _first_nonfinite(0.0, self.net.params) is not None:
            return  # never replace a good checkpoint with a broken one
        meta = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
                "network": self.net.config, "trainer": self._trainer_config(),
                "position": pos, "step": self.step_count, "skipped": self.skipped,
                "history": history.to_dict(), "n_states": len(states),
                "best": None if best is None else best[:2], "extra": extra or {}}
        arrays = {f"param/{k}": v for k, v in self.net.params.items()}
        for k, v in self.opt.state_dict().items():
            arrays[f"optim/{k}"] = np.asarray(v)
        for i, parts in enumerate(states):
            for j, a in enumerate(parts):
                arrays[f"state/{i}/{j}"] = a
        if best is not None:
            arrays.update({f"best/{k}": v for k, v in best[2].items()})
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
        io.atomic_write_npz(path, arrays)

    def _load_checkpoint(self, path):
        arrays = io.read_npz(path, "rnnlab checkpoint")
        try:
            meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
            assert meta["format"] == CHECKPOINT_FORMAT
        except Exception:
            raise ValueError(f"{path} is not an rnnlab checkpoint") from None
        if meta["version"] != CHECKPOINT_VERSION:
            raise ValueError(f"{path} is checkpoint version {meta['version']}; "
                             f"this rnnlab reads version {CHECKPOINT_VERSION}")
        if meta["network"] != self.net.config:
            diff = {k: (v, self.net.config.get(k)) for k, v in meta["network"].items()
                    if self.net.config.get(k) != v}
            raise ValueError(f"{path} is a checkpoint of another model shape "
                             f"(checkpoint vs this model: {diff})")
        mine = self._trainer_config()
        theirs = {**meta["trainer"], "bptt": None if meta["trainer"]["bptt"] is None
                  else tuple(meta["trainer"]["bptt"])}
        if theirs != mine:
            diff = {k: (v, mine.get(k)) for k, v in theirs.items() if mine.get(k) != v}
            raise ValueError(f"{path} was written with other training settings "
                             f"(checkpoint vs now: {diff})")
        io.load_params(self.net.params, arrays, path)
        self.opt.load_state_dict({k[6:]: (v.item() if v.ndim == 0 else v)
                                  for k, v in arrays.items() if k.startswith("optim/")})
        self.step_count, self.skipped = meta["step"], meta["skipped"]
        states = []
        for i in range(meta["n_states"]):
            parts, j = [], 0
            while f"state/{i}/{j}" in arrays:
                parts.append(arrays[f"state/{i}/{j}"])
                j += 1
            states.append(parts)
        self._loaded_extra = meta.get("extra", {})
        history = History(**meta["history"])
        best = None
        if meta["best"] is not None:
            best = (*meta["best"], {k[5:]: v for k, v in arrays.items() if k.startswith("best/")})
        return meta["position"], states, history, best


def _first_nonfinite(loss, grads) -> str | None:
    if not math.isfinite(loss):
        return "the loss"
    for name, g in grads.items():
        if not np.isfinite(g).all():
            return f"the gradient of {name}"
    return None


def _flatten_state(state) -> list:
    return list(state) if isinstance(state, tuple) else [state]


def _unflatten_state(net, parts):
    return tuple(parts) if net.rnn.n_state > 1 else parts[0]


def _install_sigint(flag: list):
    """Turn Ctrl-C into a flag checked between updates, so a checkpoint is written first."""
    def handler(signum, frame):
        if flag:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        flag.append(True)

    try:
        return signal.signal(signal.SIGINT, handler)
    except ValueError:  # not in the main thread: leave Ctrl-C alone
        return signal.getsignal(signal.SIGINT)


def _restore_sigint(handler):
    try:
        signal.signal(signal.SIGINT, handler)
    except (ValueError, TypeError):
        pass
