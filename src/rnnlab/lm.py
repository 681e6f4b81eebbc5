"""Language models on text: the job behind ``rnnlab train``, ``sample`` and ``eval``.

Shape legend: B parallel streams, T steps per window (``bptt``), V vocabulary size.

A model reads tokens (characters by default; their ids, which the network takes as it
would their one-hot vectors) and predicts the next one at every step (softmax readout
``all``). Training is truncated BPTT over stream-aligned windows:
the token stream is cut into B contiguous pieces read side by side, and the hidden state
is carried from each window to the next, so the forward pass sees each piece's whole
history while the gradient reaches back ``bptt`` steps (:mod:`rnnlab.data.text`). Where a
document begins (a play of the default corpus, a file of a folder), the state is reset to
zeros, in training and in every evaluation: one document's memory does not leak into the
next.

A run folder holds::

    run.json        format, rnnlab version, corpus, environment, results so far
    config.toml     the effective configuration (LMConfig)
    vocab.json      the vocabulary
    model.rnnlab    the network (rnnlab.load reads it)
    checkpoint.ckpt parameters, optimiser state, data position, carried state: --resume
    metrics.jsonl   one line per logged step and per evaluation
    loss.png        training and validation loss against step
    report.html     the run on one web page, with --report (rnnlab.report)
    .lock           held by the process training in the folder (rnnlab.runlock)

Every file but metrics.jsonl (appended to) and loss.png is written whole or not at all (a
temporary file renamed over it), and a new run writes its model before run.json, so a
training process killed once run.json exists leaves a folder that resumes: from its
checkpoint, or from update 0 if it had none yet.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from . import checks, engine, io, losses, parallel, runlock
from ._version import __version__
from .data.text import StreamBatcher, Vocab, read_documents
from .lmrun import RUN_FORMAT, RUN_VERSION, LMConfig, Run, load_corpus, open_run
from .network import Network
from .progress import Progress, sigint_flag
from .stream import Stream
from .train import Trainer

LN2 = math.log(2.0)
# the run folder's configuration and opening, in their own module, named here as before
__all__ = ["LMConfig", "RUN_FORMAT", "RUN_VERSION", "Run", "TailDecay", "evaluate", "generate",
           "load_corpus", "open_run", "sample", "stream_loss", "train"]


# ----------------------------------------------------------------------------------------
# data


def encode(vocab: Vocab, text: str, starts=()):
    """Token ids of ``text`` and where its documents begin among them: ``(ids, starts)``.

    Each document (from one character offset of ``starts`` to the next) is encoded on its
    own, so a document always begins a token, whichever the tokens.
    """
    cuts = sorted({0, *(int(s) for s in starts if 0 < s < len(text))}) + [len(text)]
    pieces = [vocab.encode(text[a:b], unk=True) for a, b in zip(cuts[:-1], cuts[1:],
                                                                 strict=True)]
    at = np.cumsum([0] + [len(p) for p in pieces[:-1]])
    return np.concatenate(pieces), (tuple(int(a) for a in at) if starts else ())


def stream_loss(net, ids, *, batch: int = 16, window: int = 128, limit: int | None = None,
                starts=None):
    """Mean cross-entropy (nats per token) of ``net`` on a token stream, state carried.

    The stream is read as ``batch`` side-by-side pieces in windows of ``window`` steps; a
    stream too short for that is read as fewer, shorter pieces. With ``limit``, only the
    first windows of every piece are read, about ``limit`` tokens in all: an estimate
    spread over the whole stream rather than its beginning. ``starts``: token positions
    where documents begin, at which the state is reset. Returns
    ``(nats per token, tokens scored)``.
    """
    ids = np.asarray(ids)
    if len(ids) < 2:
        raise ValueError(f"need at least 2 tokens to score, got {len(ids)}")
    batch = max(1, min(batch, (len(ids) - 1) // 2))
    window = max(1, min(window, (len(ids) - 1) // batch))
    V = net.output_size
    state, total, count = None, 0.0, 0
    for x, y, reset in StreamBatcher(ids, batch, window, starts=starts).windows():
        z, state = net.infer(x, state, reset=reset)  # token ids: rows of W_x, no one-hot
        loss, _ = losses.softmax_cross_entropy(z.reshape(-1, V), y.reshape(-1))
        total += loss * y.size
        count += y.size
        if limit is not None and count >= limit:
            break
    return total / count, count


def train(cfg: LMConfig, *, out=None, resume=None, progress=None, echo=print,
          comm=None, tensorboard=None) -> Path:
    """Train a language model and write a run folder; returns its path.

    Parameters
    ----------
    cfg : LMConfig
    out : path of the run folder to create (default ``runs/<cell>-<time>``); with
        ``resume``, ignored
    resume : path of an earlier run folder to continue, with its own configuration
        (``cfg.steps`` and ``cfg.time_budget`` replace the saved ones)
    progress : show a progress bar (None: when standard error is a terminal)
    echo : where short messages and samples go (``print``)
    comm : as :class:`rnnlab.Trainer`'s: under ``mpiexec -n N`` each rank trains its share
        of the ``batch`` streams (``batch`` must divide by N), and rank 0 alone writes the
        run folder; ``run.json`` records ``"ranks": N``
    tensorboard : path of a folder for TensorBoard event files (:mod:`rnnlab.tensorboard`):
        the logged losses, gradient norm, clipping and learning rate, validation losses,
        histograms of weights and gradients, and the gradient flow on a few validation
        windows at every validation

    Ctrl-C saves a checkpoint and the model, then raises ``KeyboardInterrupt``. A folder
    that another process is training in is refused (:func:`rnnlab.runlock.hold`).
    """
    if tensorboard is not None:  # the extra and the folder, before anything is written
        from .tensorboard import check_logdir

        check_logdir(tensorboard)
    dp = parallel.DataParallel.of(comm)
    root = dp is None or dp.root
    if resume is not None:
        run_dir = Path(resume)
        io.read_run_info(run_dir, RUN_FORMAT, RUN_VERSION)  # a lock only in a run folder
    else:
        cfg.check()
        run_dir = None
        if root:
            run_dir = io.check_folder(out if out is not None else Path("runs") / (
                f"{cfg.cell}-{time.strftime('%Y%m%d-%H%M%S')}"))
        if dp is not None:  # the folder rank 0 made (its name has rank 0's clock in it)
            run_dir = dp.comm.bcast(run_dir)
    with runlock.hold(run_dir) if root else contextlib.nullcontext():
        watch = contextlib.ExitStack()
        if dp is not None:  # a rank that dies: one line, whoever can still write it
            watch.enter_context(dp.witnessed(run_dir))
            watch.enter_context(dp.watched())
        with watch:
            try:
                _train(_Job(cfg, run_dir, resume is not None, progress, echo, dp, tensorboard))
            except parallel.RankLost as e:
                # no checkpoint now: writing one takes every rank; the last one stands
                if (run_dir / "checkpoint.ckpt").exists():
                    raise parallel.RankLost(f"{e}; the last checkpoint resumes: rnnlab train "
                                            f"--resume {run_dir}") from None
                raise
    return run_dir


def _train(job: _Job) -> None:
    """:func:`train`'s loop over updates, in a folder locked for it."""
    cfg, trainer, bar = job.cfg, job.trainer, job.bar
    with job.metrics_file():
        with sigint_flag() as interrupted:
            try:
                while True:
                    done, job.decay.progress = job.shared((job.finished(), job.progress()))
                    if done:
                        break
                    x, y, reset = next(job.windows)
                    # one update on the Trainer's loop: forward, backward, guard, clip, step
                    # (token ids go in as they are: the input projection is a row gather)
                    info, job.state = trainer.train_step(x, y, state=job.state, reset=reset)
                    step = trainer.step_count
                    job.record(info)
                    if step % cfg.eval_every == 0:
                        job.validate(cfg.eval_tokens, note=True)
                    if cfg.sample_every and step % cfg.sample_every == 0:
                        job.sample()
                    if step % cfg.checkpoint_every == 0:
                        job.save()
                    if job.agreed(bool(interrupted)):
                        raise KeyboardInterrupt
                    if job.batcher.window == 0:
                        job.state = None  # a new epoch: the pieces start over, so does memory
            except KeyboardInterrupt:
                bar.close()
                job.save()
                job.echo(f"rnnlab: interrupted at step {trainer.step_count}; checkpoint saved. "
                         f"Continue with: rnnlab train --resume {job.run_dir}")
                raise
        bar.close()
        final = job.validate(None)
        job.save()
    job.finish(final)


class _Job:
    """A training run in progress: its folder, data, network, trainer and bookkeeping."""

    def __init__(self, cfg: LMConfig, run_dir: Path, resume: bool, progress, echo, dp=None,
                 tensorboard=None):
        self.run_dir, self.dp = run_dir, dp
        self.root = dp is None or dp.root
        if not self.root:  # one voice: rank 0's
            progress, echo = False, _silent
        if resume:
            saved = open_run(run_dir)
            cfg = dataclasses.replace(saved.config, steps=cfg.steps, time_budget=cfg.time_budget)
            cfg.check()
            vocab, self.info = saved.vocab, saved.info
            if self.root:
                _remove_temporaries(run_dir)
        else:
            if self.root and any(p.name != runlock.LOCK_FILE for p in run_dir.iterdir()):
                raise ValueError(f"{run_dir} exists and is not empty; choose another "
                                 f"--out or --resume it")
            vocab, self.info = None, None
        self.cfg, self.echo = cfg, echo
        if dp is not None and cfg.batch % dp.size:
            raise ValueError(f"batch {cfg.batch} does not divide among {dp.size} ranks: give "
                             f"a batch that is a multiple of {dp.size}")
        corpus = load_corpus(cfg)
        if vocab is None:
            vocab = Vocab.build(corpus.train, tokens=cfg.tokens,
                                max_size=cfg.max_vocab if cfg.tokens == "word" else None)
        self.vocab, self.V = vocab, len(vocab)
        train_ids, train_starts = encode(vocab, corpus.train, corpus.train_starts)
        self.val_ids, self.val_starts = encode(vocab, corpus.validation,
                                               corpus.validation_starts)
        self.batcher = StreamBatcher(train_ids, cfg.batch, cfg.bptt, seed=cfg.seed,
                                     starts=train_starts)
        variant = {k: v for k, v in (("proj_size", cfg.proj_size),
                                     ("peepholes", cfg.peepholes),
                                     ("layer_norm", cfg.layer_norm), ("dropout", cfg.dropout),
                                     ("recurrent_dropout", cfg.recurrent_dropout),
                                     ("zoneout", cfg.zoneout))
                   if (any(v) if isinstance(v, list) else v)}
        self.net = Network(self.V, cfg.hidden, self.V, cell=cfg.cell, num_layers=cfg.layers,
                           output="softmax", readout="all", window=cfg.window, seed=cfg.seed,
                           precision=cfg.precision, **variant)
        self.decay = TailDecay(cfg.lr, cfg.lr_decay)
        self.trainer = Trainer(self.net, "adam", cfg.lr, clip_norm=cfg.clip or None,
                               batch_size=cfg.batch, seed=cfg.seed, log=None, progress=False,
                               tensorboard_dir=tensorboard, comm=dp if dp is not None else False,
                               schedule=self.decay)
        self.precision = engine.precision_record(cfg.precision)
        if self.precision["computes_in"] != cfg.precision and cfg.precision == "bf16":
            self.echo(f"rnnlab: {engine.BF16_ABSENT}")
        self.state, self.elapsed0, self.curve = None, 0.0, {"train": [], "val": []}
        self.recent: list = []  # losses since the last logged step (their mean is logged)
        if resume:
            # without a checkpoint (killed before the first) the run stands at update 0
            if (run_dir / "checkpoint.ckpt").exists():
                ckpt = self.trainer.load_checkpoint(run_dir / "checkpoint.ckpt")
                self.batcher.load_state_dict(ckpt.extra["batcher"])
                # saved after an epoch's last window, the state belongs to the epoch that ended
                self.state = ckpt.states[0] if ckpt.states and self.batcher.window else None
                if self.state is not None and dp is not None:  # this rank's streams
                    self.state = self.trainer.state_rows(self.state, dp.share(cfg.batch))
                self.elapsed0, self.curve = ckpt.extra["elapsed"], ckpt.extra["curve"]
                self.recent = ckpt.extra.get("recent", [])  # saved since this line was written
            # the updates after the checkpoint are made again: their old lines go
            if self.root:
                io.truncate_log(run_dir / "metrics.jsonl", self.trainer.step_count)
        elif self.root:
            self._start(corpus, train_ids)
        if self.info is not None:
            self.info["ranks"] = 1 if dp is None else dp.size
        self.windows = _endless(self.batcher)
        self.rng = np.random.default_rng([cfg.seed, self.trainer.step_count])
        self.unit = "char" if cfg.tokens == "char" else "tok"
        # with a time budget the end is a time, not a step: "left" in the stats tells it
        self.bar = Progress(total=None if cfg.time_budget else cfg.steps, enabled=progress,
                            done=self.trainer.step_count, unit="step")
        self.t_start = time.perf_counter()

    def _start(self, corpus, train_ids) -> None:
        """A new run folder: configuration, vocabulary, run.json, and a word on the job."""
        cfg, net, run_dir = self.cfg, self.net, self.run_dir
        io.replace_text(run_dir / "config.toml", cfg.to_toml())  # whole or not at all
        io.replace_text(run_dir / "vocab.json", self.vocab.to_json())
        from .environment import environment

        self.info = {"format": RUN_FORMAT, "version": RUN_VERSION, "rnnlab": __version__,
                     "corpus": corpus.description, "vocab_size": self.V, "tokens": cfg.tokens,
                     "train_tokens": int(len(train_ids)),
                     "validation_tokens": int(len(self.val_ids)), "parameters": net.n_params,
                     "precision": self.precision, "environment": environment()}
        net.save(run_dir / "model.rnnlab")  # before run.json: a run folder always has a model
        io.write_json(run_dir / "run.json", self.info)
        self.echo(f"rnnlab: training a {cfg.layers}x{cfg.hidden} {cfg.cell.upper()} "
                  f"({net.n_params:,} parameters, {self.precision['computes_in']}) on "
                  f"{corpus.description}")
        self.echo(f"rnnlab: {len(train_ids):,} training {cfg.tokens}s, vocabulary {self.V}; "
                  f"run folder {run_dir}")

    def agreed(self, mine: bool) -> bool:
        """Rank 0's answer, on every rank (each has its own clock and Ctrl-C): the ranks
        stop together, or none does."""
        return bool(self.shared(mine))

    def shared(self, mine):
        """Rank 0's value of ``mine``, on every rank (its clock decides for all)."""
        return mine if self.dp is None else self.dp.comm.bcast(mine)

    def progress(self) -> float:
        """How far the run has gone towards its end, 0 to 1: the larger of the shares of
        its steps and of its time budget used."""
        cfg, shares = self.cfg, [0.0]
        if cfg.steps is not None:
            shares.append(self.trainer.step_count / cfg.steps)
        if cfg.time_budget is not None:
            shares.append(self.elapsed() / cfg.time_budget)
        return min(1.0, max(shares))

    @contextmanager
    def metrics_file(self):
        if not self.root:
            self.metrics = _Nowhere()
            yield
            return
        self.metrics = (self.run_dir / "metrics.jsonl").open("a", encoding="utf-8")
        try:
            with self.trainer.open_logs():  # the TensorBoard files, if asked for
                if self.trainer.step_count == 0:
                    self._tensorboard_flow()  # the starting point
                yield
        finally:
            self.metrics.close()

    def elapsed(self) -> float:
        return self.elapsed0 + time.perf_counter() - self.t_start

    def finished(self) -> bool:
        cfg = self.cfg
        return ((cfg.steps is not None and self.trainer.step_count >= cfg.steps)
                or (cfg.time_budget is not None and self.elapsed() >= cfg.time_budget))

    def _write(self, record: dict) -> None:
        self.metrics.write(json.dumps({**record, "seconds": self.elapsed()}) + "\n")

    def record(self, info) -> None:
        """The update's loss: a metrics line every 10 updates, and the progress bar."""
        s, cfg = self.trainer.step_count, self.cfg
        self.recent.append(float(info.loss))  # float64, as a checkpoint gives them back
        if s % 10 == 0:
            loss10 = float(np.mean(self.recent))
            self.recent.clear()
            self.curve["train"].append((s, loss10))
            # the rate of the update just made (the schedule follows the run's progress)
            self._write({"step": s, "loss": loss10, "grad_norm": info.grad_norm,
                         "clipped": info.clipped, "lr": self.trainer.current_lr()})
            if self.trainer.tensorboard is not None:
                self.trainer.tensorboard.scalars(s, {
                    "train/loss": loss10, "train/grad_norm": info.grad_norm,
                    "train/clipped": info.clipped,
                    "train/learning_rate": self.trainer.current_lr()})
        tokens_per_step = cfg.batch * cfg.bptt
        rate = (s - self.bar.start_done) * tokens_per_step / max(
            time.perf_counter() - self.t_start, 1e-9)
        left = _time_left(cfg, s, self.elapsed(), rate / tokens_per_step)
        self.bar.update(1, loss=info.loss, bits=info.loss / LN2,
                        **{f"{self.unit}/s": round(rate), "left": left})

    def validate(self, limit, *, note: bool = False) -> float:
        """Validation loss (nats per token) on about ``limit`` tokens (None: all), logged."""
        s = self.trainer.step_count
        nats, n = stream_loss(self.net, self.val_ids, limit=limit, starts=self.val_starts)
        self.curve["val"].append((s, nats))
        self._write({"step": s, "val_nats": nats, "val_bits": nats / LN2, "val_tokens": n})
        self.metrics.flush()
        if self.trainer.tensorboard is not None:
            self.trainer.tensorboard.scalars(s, {"validation/loss": nats})
            self._tensorboard_flow()
        if note:
            self.bar.note(f"step {s}: validation {nats:.3f} nats/{self.unit} = "
                          f"{nats / LN2:.3f} bits, {self.elapsed():.0f} s")
        return nats

    def _tensorboard_flow(self) -> None:
        """The relative gradient flow on 4 validation windows of ``bptt`` tokens, to the
        TensorBoard files (about H backward passes over them: at validations only)."""
        tb = self.trainer.tensorboard
        if tb is None or len(self.val_ids) < 2:
            return
        from . import diagnostics
        from .data.text import one_hot

        steps = min(self.cfg.bptt, len(self.val_ids) - 1)
        at = np.linspace(0, len(self.val_ids) - 1 - steps, 4).astype(int)
        x = np.stack([self.val_ids[a:a + steps] for a in at])  # (4, T) token ids
        x = one_hot(x, self.V, self.net.dtype)  # (4, T, V): the reference loop's input
        flow = diagnostics.gradient_flow(self.net, x, relative=True)
        tb.flow(self.trainer.step_count, [float(v) for v in flow],
                diagnostics.memory_length(flow, 0.01))

    def sample(self) -> None:
        if not self.root:
            return
        text = "".join(generate(self.net, self.vocab, "\n", 200, temperature=0.8, rng=self.rng))
        self.bar.note("----- sample -----\n" + text.strip("\n") + "\n------------------")

    def save(self) -> None:
        """Checkpoint (with the carried state and the data position), model and plot."""
        states = [] if self.state is None else [self.state]
        if self.dp is not None:  # every rank's streams, in the order of the batch
            states = self.trainer.joined_states(states)
            if not self.root:
                return
        self.trainer.save_checkpoint(
            self.run_dir / "checkpoint.ckpt", states=states,
            extra={"batcher": self.batcher.state_dict(), "elapsed": self.elapsed(),
                   "curve": self.curve, "recent": self.recent})
        self.net.save(self.run_dir / "model.rnnlab")
        _plot(self.run_dir, self.curve, self.cfg)

    def finish(self, final: float) -> None:
        if not self.root:
            return
        steps, unit = self.trainer.step_count, self.unit
        self.info.update({"steps": steps, "seconds": round(self.elapsed(), 1),
                          "val_nats": final, "val_bits": final / LN2,
                          "val_perplexity": math.exp(final)})
        io.write_json(self.run_dir / "run.json", self.info)
        self.echo(f"rnnlab: done, {steps} steps in {self.elapsed():.0f} s; validation "
                  f"{final:.3f} nats/{unit}, {final / LN2:.3f} bits/{unit}, perplexity "
                  f"{math.exp(final):.2f}")
        self.echo(f"rnnlab: sample it with: rnnlab sample {self.run_dir}")


def _silent(*args, **kwargs) -> None:
    """Where the messages of ranks other than 0 go."""


class _Nowhere:
    """The metrics file of ranks other than 0: rank 0 writes the one file."""

    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        pass


def _remove_temporaries(run_dir: Path) -> None:
    """Delete the temporary files that writes cut short by a kill left in a run folder.

    Only under the folder's lock: then no other process is writing them.
    """
    for name in ("checkpoint.ckpt", "model.rnnlab", "run.json", "metrics.jsonl",
                 "config.toml", "vocab.json"):
        for tmp in run_dir.glob(f".{name}.*"):
            if tmp.name.endswith(".tmp"):
                tmp.unlink(missing_ok=True)


class TailDecay:
    """The language model's learning rate: ``lr`` until the last ``share`` of the run,
    then falling linearly to 0 at its end (``share`` 0: constant).

    A run ends at a number of steps or at a time budget, and how many steps the time
    allows is known only as it goes, so the schedule follows :attr:`progress`, the share
    of the run done (steps or time, whichever is further), which the training loop sets
    before each update; called with the step index as a :mod:`rnnlab.schedules` schedule
    is, it returns the rate for that update. A constant rate's loss stops falling at the
    level its step size allows; the decay takes it below (measurements: README, "The
    default run, measured").
    """

    def __init__(self, lr: float, share: float):
        self.lr, self.share, self.progress = lr, share, 0.0

    def __call__(self, step: int) -> float:
        if not self.share:
            return self.lr
        return self.lr * min(1.0, max(0.0, 1.0 - self.progress) / self.share)

    def __repr__(self) -> str:
        return f"TailDecay(lr={self.lr!r}, share={self.share!r})"


def _endless(batcher):
    """The batcher's windows with their resets, epoch after epoch."""
    while True:
        yield from batcher.windows()


def _time_left(cfg, step, elapsed, steps_per_s):
    left = []
    if cfg.time_budget is not None:
        left.append(cfg.time_budget - elapsed)
    if cfg.steps is not None and steps_per_s > 0:
        left.append((cfg.steps - step) / steps_per_s)
    if not left:
        return "?"
    m, s = divmod(max(0, int(min(left))), 60)
    return f"{m}:{s:02d}"


def _plot(run_dir: Path, curve: dict, cfg: LMConfig) -> None:
    try:
        from . import plots
    except ImportError:  # plotting is optional: the numbers are in metrics.jsonl
        return
    curves = {k: v for k, v in (("training", curve["train"]), ("validation", curve["val"])) if v}
    if curves:
        plots.plot_loss(curves, run_dir / "loss.png", ylabel=f"nats per {cfg.tokens}",
                        title=f"{cfg.layers}x{cfg.hidden} {cfg.cell.upper()} language model")


# ----------------------------------------------------------------------------------------
# sampling and evaluation


def generate(net, vocab: Vocab, prime: str, length: int, *, temperature: float = 1.0,
             top_k: int | None = None, rng=None):
    """Yield ``length`` generated tokens (as text), one step at a time through the state.

    ``prime`` is read first (every character must be in the vocabulary); sampling draws
    from ``softmax(logits / temperature)``, restricted to the ``top_k`` likeliest tokens.
    The arguments are checked, and the prime encoded, when this is called, before the first
    token is asked for: a bad prime is refused before anything is written.
    """
    length = checks.positive_int(length, "length")
    temperature = checks.positive_number(temperature, "temperature")
    top_k = checks.optional(checks.positive_int, top_k, "top_k")
    ids = vocab.encode(prime) if prime else np.array([], dtype=np.int32)
    if len(ids) == 0:
        ids = vocab.encode("\n") if "\n" in vocab.itos else np.array([1], np.int32)
    return _tokens(net, vocab, ids, length, temperature, top_k, np.random.default_rng(rng))


def _tokens(net, vocab: Vocab, ids, length, temperature, top_k, rng):
    """:func:`generate`'s tokens, from checked arguments."""
    V = len(vocab)
    z, state = net.infer(np.asarray(ids)[None, :])
    logits = z[0, -1].astype(np.float64)
    stream = Stream(net.rnn, 1, state)  # checks once, then one lean step per token
    W, b = net.params["head.W_y"], net.params["head.b_y"]
    x = np.zeros((1, V), net.dtype)
    banned = vocab.unk_id if vocab.tokens == "char" else None  # never write "\ufffd"
    for _ in range(length):
        logits = logits / temperature
        if banned is not None:
            logits[banned] = -np.inf
        if top_k is not None and top_k < V:
            cut = np.partition(logits, -top_k)[-top_k]
            logits = np.where(logits >= cut, logits, -np.inf)
        p = np.exp(logits - logits.max())
        p /= p.sum()
        i = int(rng.choice(V, p=p))
        yield vocab.decode([i])
        x[:] = 0
        x[0, i] = 1
        logits = (stream.step(x) @ W + b)[0].astype(np.float64)


def sample(run, *, prime: str = "", length: int = 500, temperature: float = 1.0,
           top_k: int | None = None, seed: int | None = None, out=None) -> str:
    """Generate text from a run folder, writing it to ``out`` (a text stream) as it comes."""
    r = open_run(run)
    out = sys.stdout if out is None else out
    tokens = generate(r.net, r.vocab, prime, length, temperature=temperature, top_k=top_k,
                      rng=seed)  # checks the prime before anything is written
    pieces = [prime]
    out.write(prime)
    for piece in tokens:
        out.write(piece)
        out.flush()
        pieces.append(piece)
    out.write("\n")
    return "".join(pieces)


def evaluate(run, data) -> dict:
    """Bits per token and perplexity of a run's model on the text at ``data``.

    Tokens outside the vocabulary count as the unknown token (which the model rates as
    unlikely, so they cost what they should).
    """
    r = open_run(run)
    ids, starts = encode(r.vocab, *read_documents(data))
    nats, n = stream_loss(r.net, ids, starts=starts)
    unknown = int(np.sum(ids == r.vocab.unk_id))
    return {"tokens": n, "unknown": unknown, "nats": nats, "bits": nats / LN2,
            "perplexity": math.exp(nats), "unit": r.config.tokens}
