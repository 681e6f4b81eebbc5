"""Training logs for TensorBoard: event files written through tensorboardX.

Shape legend: T lags of a gradient-flow curve.

:class:`rnnlab.Trainer` (``tensorboard_dir=``) and ``rnnlab train --tensorboard DIR`` call
a :class:`TensorBoardLog` where they already log. Tags:

``train/loss``, ``train/grad_norm``, ``train/clipped`` (1 or 0), ``train/learning_rate``
    every logged update (the JSON-lines log's step lines; a language model's loss is the
    mean of the last 10 updates, as in its ``metrics.jsonl``)
``epoch/train_loss``, ``epoch/val_loss``, ``epoch/grad_norm``, ``epoch/clip_rate``
    each epoch of :meth:`rnnlab.Trainer.fit`, at the update count where it ended
``validation/loss``
    a language model's validation estimates (nats per token)
``weights/<name>``, ``gradients/<name>``
    histograms every logged update: the parameters after the update, the gradients it
    applied before clipping
``gradient_flow/update_<n>``
    the relative gradient flow recorded at update n, one value per lag, with the lag as
    TensorBoard's step: the curve itself in the scalars dashboard (log axis: its own
    toggle); ``gradient_flow/memory_length`` the lag where it falls below 1 % of lag 0

tensorboardX is an optional dependency (``pip install 'rnnlab[tensorboard]'``); it is
imported when a log is opened, and its absence is a one-line error naming the extra.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

EXTRA = "pip install 'rnnlab[tensorboard]'"


def _summary_writer():
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise ModuleNotFoundError(f"TensorBoard logs need tensorboardX: {EXTRA}") from None
    return SummaryWriter


def check_logdir(logdir) -> Path:
    """``logdir`` as a Path, once tensorboardX imports and the path is not a file; else the
    one-line error (ModuleNotFoundError naming the extra, or ValueError)."""
    _summary_writer()
    logdir = Path(logdir)
    if logdir.exists() and not logdir.is_dir():
        raise ValueError(f"tensorboard folder {logdir} is a file; expected a folder")
    return logdir


class TensorBoardLog:
    """An open set of event files in ``logdir`` (created if needed).

    Parameters
    ----------
    logdir : path
        The folder TensorBoard is pointed at (``tensorboard --logdir DIR``). Each log opened
        on it adds an event file of its own; TensorBoard merges them.
    """

    def __init__(self, logdir):
        writer = _summary_writer()
        self.logdir = check_logdir(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        # flush_secs: a run killed mid-way still leaves most of its events on disk
        self.writer = writer(logdir=str(self.logdir), flush_secs=10)

    def scalars(self, step: int, values: dict) -> None:
        """``tag -> number`` at ``step``; None, NaN and Inf are left out (TensorBoard
        cannot draw them), booleans become 1 and 0."""
        for tag, v in values.items():
            if v is None:
                continue
            v = float(v)
            if math.isfinite(v):
                self.writer.add_scalar(tag, v, int(step))

    def histograms(self, step: int, arrays: dict, prefix: str) -> None:
        """A histogram of each array (``name -> array``) as ``<prefix><name>``."""
        for name, a in arrays.items():
            a = np.asarray(a, dtype=np.float64).ravel()
            if a.size and np.isfinite(a).all():
                self.writer.add_histogram(prefix + name, a, int(step))

    def flow(self, step: int, flow, memory_length=None) -> None:
        """A gradient-flow curve (T,) recorded at update ``step``: its values against the
        lag under ``gradient_flow/update_<step>``, and its memory length."""
        tag = f"gradient_flow/update_{int(step)}"
        for lag, v in enumerate(flow):
            if v is not None and math.isfinite(v) and v > 0:
                self.writer.add_scalar(tag, float(v), lag)
        if memory_length is not None:
            self.writer.add_scalar("gradient_flow/memory_length", float(memory_length),
                                   int(step))

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
