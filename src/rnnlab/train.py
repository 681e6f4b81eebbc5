"""The training loop: mini-batches, BPTT schedule, clipping, optimiser, checkpoints, logs.

Shape legend: N sequences, B batch, T time, D input features, K outputs.

One update is always the same linear story::

    loss, grads  <- forward + backward (full or truncated BPTT, :mod:`rnnlab.bptt`)
    guard        <- stop (or skip) on NaN/Inf in the loss or a gradient
    norm         <- clip (by global norm or by value), norm before clipping logged
    params       <- optimiser step (learning rate from the schedule)

and it lives in :meth:`Trainer.apply`, so anything that produces gradients (for example a
data-parallel all-reduce) slots in before the clip. :meth:`Trainer.batch_updates` runs it
over one batch, full or truncated, after the one batch hook :meth:`Trainer.prepare_batch`;
:meth:`Trainer.fit` loops over epochs and batches, and :func:`rnnlab.lm.train` over a text
stream, both through them. Checkpoints are :mod:`rnnlab.checkpoint`'s.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import bptt, checkpoint, checks, clip, io, optim, parallel
from .progress import Progress, sigint_flag


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


class Update(NamedTuple):
    """One update of :meth:`Trainer.batch_updates`."""

    info: StepInfo
    state: object  # the recurrent state after the update's steps
    window: int | None  # the batch's next window (truncated BPTT); None when it is done
    carried: list  # what continues the batch at ``window`` (bptt.Truncated.carried); or []


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
        every k1 steps with gradients truncated to k2 steps (see :mod:`rnnlab.bptt`). A
        many-to-one network (``readout="last"``) takes k: one update per batch, its gradient
        truncated to each sequence's last k steps (:func:`rnnlab.bptt.last_steps`).
    batch_size : int
    seed : int
        Shuffling order: epoch e uses ``np.random.default_rng([seed, e])``. The train-time
        masks (dropout, recurrent dropout, zoneout: :mod:`rnnlab.dropout`) come from a
        generator of their own seeded from it (:attr:`mask_rng`), one draw per batch; its
        state is part of the checkpoint, so a resumed run draws the masks a straight run
        draws.
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
    tensorboard_dir : path or None
        Also write TensorBoard event files there (:mod:`rnnlab.tensorboard`, needs
        ``rnnlab[tensorboard]``): the logged updates' loss, gradient norm, clipping and
        learning rate, each epoch's record, histograms of weights and gradients every
        ``log_every`` updates, and the gradient-flow recordings.
    augment : callable or None
        Augments training batches: ``augment(x, lengths) -> x`` on every batch before its
        updates (:meth:`prepare_batch`; data-parallel, on the global batch before the ranks
        take their rows), never in :meth:`evaluate`. An object with ``state_dict`` and
        ``load_state_dict(state, redo=)`` (:class:`rnnlab.data.augment.Augmenter`) has its
        generator saved in checkpoints, so a resumed run draws what it would have drawn.
    comm : mpi4py communicator, None or False
        Data-parallel training (:mod:`rnnlab.parallel`): each rank takes its share of every
        batch, the gradients are averaged over the ranks before the clip and the update,
        and rank 0 alone writes the checkpoint, the log and the progress bar. None (the
        default) uses the MPI world when a launcher (``mpiexec -n N``) started more than
        one rank; False never.
    precision : {"fp32", "bf16", "auto"} or None
        Sets the network's :attr:`~rnnlab.Network.precision` (None keeps it): with bf16,
        the matrix products of forward and backward round their operands to bfloat16 and
        sum in float32; the parameters (the master weights), gradients, optimiser state,
        clipping and loss stay float32.
    **optimizer_options
        Passed to the optimiser (``momentum``, ``weight_decay``, ...).
    """

    def __init__(self, net, optimizer="adam", lr=1e-3, clip_norm=None, bptt_steps=None,
                 batch_size=32, seed=0, *, clip_value=None, schedule=None,
                 on_nonfinite="stop", checkpoint=None, checkpoint_every=None, log=None,
                 log_every=10, patience=None, progress=None, diagnostics_every=None,
                 diagnostics_probe=None, tensorboard_dir=None, augment=None, comm=None,
                 precision=None, **optimizer_options):
        self.net = net
        if precision is not None:
            net.precision = precision
        if augment is not None and not callable(augment):
            raise ValueError(f"augment must be callable (x, lengths) -> x, got {augment!r}")
        self.augment = augment
        self.parallel = parallel.DataParallel.of(comm)
        self.optimizer_name = optimizer if isinstance(optimizer, str) else optimizer.name
        self.opt = (optim.make_optimizer(optimizer, lr=lr, **optimizer_options)
                    if isinstance(optimizer, str) else optimizer)
        self.lr = lr
        self.clip_norm, self.clip_value = clip_norm, clip_value
        self.bptt = bptt.parse_bptt(bptt_steps)
        if self.bptt is not None and getattr(net.rnn, "bidirectional", False):
            raise ValueError("truncated BPTT carries the state forward window by window; a "
                             "bidirectional network reads whole sequences: use bptt_steps=None")
        if self.bptt is not None and net.readout not in ("all", "last"):
            raise ValueError(f"readout={net.readout!r} pools every step into one output, so "
                             "its gradient reaches every step: use bptt_steps=None")
        if self.bptt is not None and net.readout == "last" and self.bptt[0] != self.bptt[1]:
            raise ValueError("a many-to-one network (readout='last') has one loss per sequence: "
                             "bptt_steps=k truncates its gradient to the last k steps; got "
                             f"bptt_steps={bptt_steps!r} with k1 != k2")
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
        checks.optional(checks.positive_number, clip_norm, "clip_norm")
        checks.optional(checks.positive_number, clip_value, "clip_value")
        self._log_file = None
        self.tensorboard_dir = None if tensorboard_dir is None else Path(tensorboard_dir)
        if self.tensorboard_dir is not None:  # before any training: the extra and the folder
            from .tensorboard import check_logdir

            check_logdir(self.tensorboard_dir)
        self.tensorboard = None  # the open rnnlab.tensorboard.TensorBoardLog, in open_logs
        self.step_count = 0
        self.skipped = 0
        # the train-time masks' own stream, apart from the shuffling's default_rng([seed, e])
        self.mask_rng = np.random.Generator(np.random.PCG64(
            np.random.SeedSequence(seed, spawn_key=(1,))))
        self._masks_from = self.mask_rng.bit_generator.state  # before the batch's draw

    # one update ---------------------------------------------------------------------------
    def current_lr(self) -> float:
        return self.lr if self.schedule is None else float(self.schedule(self.step_count))

    def gathered(self, loss: float, grads, count: int):
        """Gradients ready: ``(loss, grads)`` of the global batch. Data-parallel
        (:attr:`parallel`), this rank's mean ``loss`` and ``grads`` over its ``count``
        positions (``grads`` None with none) averaged over the ranks, the same on every
        rank, so that :meth:`apply` makes the same update everywhere; else as given."""
        if self.parallel is None:
            return loss, grads
        return self.parallel.mean(loss, grads, count, self.net.params)

    def apply(self, loss: float, grads: dict) -> StepInfo:
        """Guard, clip and apply gradients that something else computed: one update."""
        bad = first_nonfinite(loss, grads)
        if bad is not None:
            if self.on_nonfinite == "stop":
                raise NonFiniteError(self.step_count, bad)
            self.skipped += 1
            return StepInfo(loss, float("nan"), False, True)
        norm = clip.global_norm(grads)
        tb = self.tensorboard if (self.step_count + 1) % self.log_every == 0 else None
        if tb is not None:  # the gradients as computed, before the clip
            tb.histograms(self.step_count + 1, grads, "gradients/")
        clipped = False
        if self.clip_norm is not None and norm > self.clip_norm:
            clip.clip_by_global_norm(grads, self.clip_norm)
            clipped = True
        if self.clip_value is not None:
            clipped |= clip.clip_by_value(grads, self.clip_value) > self.clip_value
        self.opt.step(self.net.params, grads, lr=self.current_lr())
        self.step_count += 1
        if tb is not None:
            tb.histograms(self.step_count, self.net.params, "weights/")
        return StepInfo(loss, norm, clipped, False)

    def prepare_batch(self, x, y, lengths):
        """The batch as the updates see it: ``(x, y)``; the caller's arrays stay unchanged.

        The one batch hook: called once per batch, before full BPTT (:meth:`train_step`)
        and before the windows of truncated BPTT alike. Override it to augment training
        batches (:class:`rnnlab.apps.NoisyTrainer` adds noise); :meth:`evaluate` never
        calls it. Here it applies :attr:`augment`, if any (data-parallel, in :meth:`_share`).
        """
        if self.augment is None or self.parallel is not None:
            return x, y
        return self.augment(x, lengths), y

    def draw_masks(self, batch: int, steps: int):
        """The train-time masks of one batch of ``batch`` sequences of ``steps`` steps,
        from :attr:`mask_rng` (:meth:`rnnlab.Network.draw_masks`), or None when the network
        has no dropout, recurrent dropout or zoneout (nothing is drawn then).

        Drawn for the global batch: a data-parallel rank takes its rows, so the masks do not
        depend on the number of ranks."""
        self._masks_from = self.mask_rng.bit_generator.state
        draw = getattr(self.net, "draw_masks", None)
        return None if draw is None else draw(self.mask_rng, batch, steps)

    def train_step(self, x, y, *, lengths=None, state=None, reset=None):
        """Full BPTT on one batch and one update (for a many-to-one network with
        ``bptt_steps=k``, its gradient truncated to each sequence's last k steps). Returns
        ``(StepInfo, final state)``.

        ``reset`` (B, T) or (T,) of bool marks where the state entering a step is zeros (a
        new document begins: see :meth:`rnnlab.LSTM.forward`). Data-parallel, ``x``, ``y``,
        ``lengths`` and ``reset`` are the global batch, of which this rank takes its rows
        (:meth:`rnnlab.parallel.DataParallel.share`), and ``state`` and the returned state
        are those of its rows.

        With dropout, recurrent dropout or zoneout the batch's masks are drawn here
        (:meth:`draw_masks`)."""
        masks = self.draw_masks(*np.shape(x)[:2])
        if self.parallel is not None:
            if masks is not None:
                masks = masks.rows(self.parallel.share(len(x)))
            x, y, lengths, reset = self._share(x, y, lengths, reset)
            if len(x) == 0:  # fewer rows than ranks: this one adds nothing
                return self.apply(*self.gathered(0.0, None, 0)), None
        x, y = self.prepare_batch(x, y, lengths)
        if self.bptt is not None and self.net.readout == "last":
            if reset is not None:
                raise ValueError("reset masks need full BPTT here: truncated BPTT of a "
                                 "many-to-one network reads each sequence's last steps only")
            res = bptt.last_steps(self.net, x, y, lengths, self.bptt[1], state, masks=masks)
        else:
            res = self.net.loss_and_grad(x, y, lengths=lengths, state=state, reset=reset,
                                         masks=masks)
        return self.apply(*self.gathered(res.loss, res.grads, _count(self.net, x, lengths))), \
            res.state

    def _share(self, x, y, lengths, reset=None):
        """This rank's rows of a global batch (augmented first, alike on every rank)."""
        if self.augment is not None:
            x = self.augment(x, lengths)
        rows = self.parallel.share(len(x))
        if reset is not None and np.ndim(reset) == 2:
            reset = np.asarray(reset)[rows]
        return x[rows], y[rows], None if lengths is None else lengths[rows], reset

    def batch_updates(self, x, y, lengths=None, *, window: int = 0, carried=None):
        """The updates of one batch: one with full BPTT, one per window with truncated BPTT.

        Yields :class:`Update` records. ``window`` and ``carried`` continue a batch that an
        earlier pass left at that window (its :attr:`Update.carried`).
        """
        if self.bptt is None or self.net.readout == "last":  # one update per batch
            info, state = self.train_step(x, y, lengths=lengths)
            yield Update(info, state, None, [])
            return
        # one draw per batch, its masks for every window; a batch resumed at a later window
        # draws again from the state the checkpoint kept from before this draw
        masks = self.draw_masks(*np.shape(x)[:2])
        if self.parallel is not None:
            if masks is not None:
                masks = masks.rows(self.parallel.share(len(x)))
            x, y, lengths, _ = self._share(x, y, lengths)
            if carried:  # the global batch's states: this rank's rows
                carried = [self.state_rows(s, self.parallel.share(
                    _batch_of(carried[0]))) for s in carried]
            if len(x) == 0:
                for w in range(window, -(-y.shape[1] // self.bptt[0])):
                    info = self.apply(*self.gathered(0.0, None, 0))
                    last = w + 1 >= -(-y.shape[1] // self.bptt[0])
                    yield Update(info, None, None if last else w + 1, [])
                return
        x, y = self.prepare_batch(x, y, lengths)
        tb = bptt.Truncated(self.net, x, y, lengths, *self.bptt, position=window,
                            carried=carried, masks=masks)
        for res in tb:
            info = self.apply(*self.gathered(res.loss, res.grads, res.count))
            if tb.position >= tb.n_windows:
                yield Update(info, res.state, None, [])
            else:
                yield Update(info, res.state, tb.position, tb.carried())

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
        val = self._check_validation(validation)
        probe = self._check_probe(X, lengths)
        start = checkpoint.Checkpoint() if resume is None else self.load_checkpoint(resume)
        if resume is not None and self.log is not None:
            io.truncate_log(self.log, self.step_count)  # the updates after it run again
        history = History(**start.history) if start.history else History()
        best = start.best  # (validation loss, epoch, parameters) of the best epoch so far
        n_batches = -(-len(X) // self.batch_size)
        bar = Progress(total=epochs * n_batches,
                       enabled=self.progress if self.parallel is None or self.parallel.root
                       else False,
                       done=start.position["epoch"] * n_batches + start.position["batch"])
        try:
            with self.open_logs(), sigint_flag() as interrupted:
                if probe is not None and self.step_count == 0:
                    self._record_flow(probe, history)  # the starting point, before any update
                for epoch in range(start.position["epoch"], epochs):
                    tally = _Tally()
                    for here, u in self._epoch_updates(X, Y, lengths, epoch, start):
                        tally.add(u.info)
                        self._log_step(epoch, u.info)
                        if (probe is not None and not u.info.skipped
                                and self.step_count % self.diagnostics_every == 0):
                            self._record_flow(probe, history)
                        bar.update(0, loss=u.info.loss)
                        if interrupted or (self.checkpoint_every
                                           and self.step_count % self.checkpoint_every == 0):
                            self._checkpoint(here, u.carried, history, best)
                        if interrupted:
                            raise KeyboardInterrupt
                        if u.window is None:
                            bar.update(1)  # a batch done
                    best, stop = self._end_epoch(epoch, tally, val, history, best)
                    # an epoch of no updates (all skipped, or resumed past its last batch)
                    # has no training loss: None
                    loss = history.train_loss[-1]
                    bar.note(f"epoch {epoch + 1}: loss "
                             + ("none" if loss is None else f"{loss:.4f}") + (
                        "" if val is None else f", validation {history.val_loss[-1]:.4f}"))
                    self._checkpoint({"epoch": epoch + 1, "batch": 0, "window": 0}, [],
                                     history, best)
                    if stop:
                        break
        except KeyboardInterrupt:
            history.interrupted = True
            raise
        finally:
            bar.close()
        if best is not None and self.patience is not None:
            for k, v in best[2].items():
                self.net.params[k][...] = v
        return history

    def _epoch_updates(self, X, Y, lengths, epoch: int, start: checkpoint.Checkpoint):
        """Yield ``(position, Update)`` for the updates of ``epoch``, from where ``start``
        stands in it; ``position`` is where to resume after that update."""
        perm = np.random.default_rng([self.seed, epoch]).permutation(len(X))
        pos = start.position
        for b in range(pos["batch"] if epoch == pos["epoch"] else 0,
                       -(-len(X) // self.batch_size)):
            idx = perm[b * self.batch_size:(b + 1) * self.batch_size]
            resumed = (epoch, b) == (pos["epoch"], pos["batch"])
            for u in self.batch_updates(X[idx], Y[idx], None if lengths is None else lengths[idx],
                                        window=pos["window"] if resumed else 0,
                                        carried=start.states if resumed else None):
                # resume at the next window of this batch, or at the next batch
                yield ({"epoch": epoch, "batch": b + 1, "window": 0} if u.window is None
                       else {"epoch": epoch, "batch": b, "window": u.window}), u

    def _end_epoch(self, epoch: int, tally, val, history: History, best):
        """Record the epoch in the history and the log, and decide on early stopping.

        Returns ``(best, stop)``: the best epoch so far and whether to stop now.
        """
        history.epoch.append(epoch + 1)
        history.train_loss.append(_mean(tally.losses))
        history.grad_norm.append(_mean(tally.norms))
        history.clip_rate.append(float(np.mean(tally.clips)) if tally.clips else 0.0)
        history.seconds.append(time.perf_counter() - tally.t0)
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
        if self.tensorboard is not None:
            self.tensorboard.scalars(self.step_count, {
                "epoch/train_loss": history.train_loss[-1], "epoch/val_loss": vloss,
                "epoch/clip_rate": history.clip_rate[-1],
                "epoch/grad_norm": history.grad_norm[-1]})
        return best, stop

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
        if self.tensorboard is not None:
            self.tensorboard.flow(self.step_count, values, mem)

    # data checks --------------------------------------------------------------------------
    def _check_validation(self, validation):
        if validation is None:
            return None
        if not isinstance(validation, (tuple, list)) or len(validation) not in (2, 3):
            raise ValueError("validation must be a tuple (Xv, Yv) or (Xv, Yv, lengths_v)")
        return self._check_data(validation[0], validation[1],
                                validation[2] if len(validation) == 3 else None, "Xv", "Yv")

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
    @contextmanager
    def open_logs(self):
        """The JSON-lines log and the TensorBoard files, open inside the block (rank 0's
        alone). :meth:`fit` opens them itself; a loop of one's own (:mod:`rnnlab.lm`)
        runs inside this block for :attr:`tensorboard` to be set."""
        root = self.parallel is None or self.parallel.root
        writes = self.log is not None and root
        if self.tensorboard_dir is not None and root:
            from .tensorboard import TensorBoardLog

            self.tensorboard = TensorBoardLog(self.tensorboard_dir)
        self._log_file = self.log.open("a", encoding="utf-8") if writes else None
        try:
            yield
        finally:
            if self._log_file is not None:
                self._log_file.close()
            if self.tensorboard is not None:
                self.tensorboard.close()
            self._log_file = self.tensorboard = None

    def _log(self, record: dict):
        if self._log_file is not None:
            self._log_file.write(json.dumps(record) + "\n")
            self._log_file.flush()

    def _log_step(self, epoch, info: StepInfo):
        if self.step_count % self.log_every == 0 or info.skipped:
            self._log({"step": self.step_count, "epoch": epoch + 1, "loss": info.loss,
                       "grad_norm": info.grad_norm, "clipped": bool(info.clipped),
                       "skipped": info.skipped, "lr": self.current_lr()})
            if self.tensorboard is not None and not info.skipped:
                self.tensorboard.scalars(self.step_count, {
                    "train/loss": info.loss, "train/grad_norm": info.grad_norm,
                    "train/clipped": info.clipped, "train/learning_rate": self.current_lr()})

    def settings(self) -> dict:
        """The settings a checkpoint must have been written with to resume under this one."""
        return {"optimizer": self.optimizer_name, "lr": self.lr, "clip_norm": self.clip_norm,
                "clip_value": self.clip_value, "bptt": self.bptt, "batch_size": self.batch_size,
                "seed": self.seed}

    def save_checkpoint(self, path, *, states=(), extra: dict | None = None, position=None,
                        history: History | None = None, best=None) -> None:
        """Write parameters, optimiser state and the update count to ``path`` atomically.

        For loops of one's own (e.g. :mod:`rnnlab.lm`): ``states`` is a list of carried
        recurrent states, ``extra`` any JSON-serialisable record (data position, timers).
        :meth:`fit` adds where it stands (``position``, ``history``, ``best``).
        :meth:`load_checkpoint` gives all of it back. A model with NaN or Inf in its
        parameters writes nothing, so it never replaces a good checkpoint.
        """
        position = position or checkpoint.start()
        # in the middle of a batch (truncated BPTT) the resumed run draws that batch's
        # masks again: the generator as it was before their draw
        rng = self._masks_from if position["window"] else self.mask_rng.bit_generator.state
        extra = dict(extra or {})
        if hasattr(self.augment, "state_dict"):
            extra["augment"] = self.augment.state_dict()
        ckpt = checkpoint.Checkpoint(
            self.step_count, self.skipped, position, list(states),
            (history or History()).to_dict(), best, extra, rng)
        checkpoint.write(Path(path), self.net, self.opt, self.settings(), ckpt)

    def load_checkpoint(self, path) -> checkpoint.Checkpoint:
        """Restore parameters, optimiser state and update count from ``path``; returns the
        rest (:class:`rnnlab.checkpoint.Checkpoint`: ``states``, ``extra``, ...)."""
        ckpt = checkpoint.read(path, self.net, self.opt, self.settings(), History().to_dict())
        self.step_count, self.skipped = ckpt.step, ckpt.skipped
        if ckpt.masks_rng is not None:
            self.mask_rng.bit_generator.state = ckpt.masks_rng
            self._masks_from = ckpt.masks_rng
        if hasattr(self.augment, "load_state_dict") and "augment" in ckpt.extra:
            # resumed inside a batch (a later window), the batch is drawn again
            self.augment.load_state_dict(ckpt.extra["augment"],
                                         redo=ckpt.position.get("window", 0) > 0)
        return ckpt

    def _checkpoint(self, position, states, history, best):
        if self.checkpoint is None:
            return
        if self.parallel is not None:  # the global batch's states, written by rank 0
            states = self.joined_states(states)
            if not self.parallel.root:
                return
        self.save_checkpoint(self.checkpoint, states=states, position=position,
                             history=history, best=best)

    def joined_states(self, states: list) -> list:
        """Carried states (arrays, or the LSTM's tuples) of every rank's rows, joined in
        rank order; a rank with no rows in the batch carries none."""
        parts = self.parallel.comm.allgather(list(states))
        out = []
        for i in range(max(len(p) for p in parts)):
            mine = [p[i] for p in parts if len(p) > i]
            if isinstance(mine[0], tuple):
                out.append(tuple(np.concatenate([m[j] for m in mine], axis=1)
                                 for j in range(len(mine[0]))))
            else:
                out.append(np.concatenate(mine, axis=1))
        return out

    @staticmethod
    def state_rows(state, rows):
        """The rows ``rows`` (a slice of the batch) of a carried state: this rank's."""
        if isinstance(state, tuple):
            return tuple(np.ascontiguousarray(a[:, rows]) for a in state)
        return np.ascontiguousarray(state[:, rows])


def _count(net, x, lengths) -> int:
    """The positions a batch's mean loss averages over: real steps with readout "all",
    sequences with "last"."""
    if net.readout != "all":
        return len(x)
    return int(np.sum(lengths)) if lengths is not None else int(x.shape[0] * x.shape[1])


def _batch_of(state) -> int:
    return (state[0] if isinstance(state, tuple) else state).shape[1]


class _Tally:
    """The updates of one epoch, for its record in the history."""

    def __init__(self):
        self.losses, self.norms, self.clips = [], [], []
        self.t0 = time.perf_counter()

    def add(self, info: StepInfo) -> None:
        if not info.skipped:
            self.losses.append(info.loss)
            self.norms.append(info.grad_norm)
            self.clips.append(info.clipped)


def _mean(values) -> float | None:
    return float(np.mean(values)) if values else None


def first_nonfinite(loss, grads) -> str | None:
    """Where the first NaN or Inf is: "the loss", "the gradient of <name>", or None."""
    if not math.isfinite(loss):
        return "the loss"
    for name, g in grads.items():
        if not np.isfinite(g).all():
            return f"the gradient of {name}"
    return None
