"""A language model's run folder: its configuration and opening it.

:class:`LMConfig` is everything that defines a run (saved as ``config.toml``);
:func:`open_run` opens a folder that :func:`rnnlab.lm.train` wrote, checking every file
against the others before anything is used; :func:`load_corpus` reads the configured text.
The layout of a run folder is described in :mod:`rnnlab.lm`.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

from . import checks, io
from .cells import LAYERS
from .cells.ffnn import DEFAULT_WINDOW
from .data.corpus import default_corpus, split_text
from .data.text import Vocab, read_documents
from .network import Network
from .saving import load

RUN_FORMAT = "rnnlab-run"
RUN_VERSION = 1


@dataclass
class LMConfig:
    """Everything that defines a language-model run; saved as ``config.toml`` in the run."""

    data: str | None = None  # UTF-8 text file or folder of .txt files; None: default corpus
    tokens: str = "char"  # "char" or "word"
    max_vocab: int = 10000  # word vocabularies only: most frequent tokens kept (ids in all)
    validation_fraction: float = 0.05  # share of --data held out (its tail)
    cell: str = "lstm"  # "lstm", "gru", "elman" or "ffnn" (the feedforward baseline)
    window: int | None = None  # ffnn only: inputs each step sees (None: 8)
    hidden: int = 256  # units per layer
    layers: int = 1  # stacked recurrent layers
    proj_size: int = 0  # LSTM only: project each layer's output to this many units (0: none)
    peepholes: bool = False  # LSTM only: peephole connections from the cell state
    layer_norm: bool = False  # LSTM and GRU only: layer normalisation (rnnlab.LSTM's)
    dropout: float = 0.0  # train-time dropout between stacked layers (layers >= 2; 0: none)
    recurrent_dropout: float = 0.0  # train-time dropout on h in the recurrent product (0: none)
    zoneout: float | list = 0.0  # train-time zoneout rate, or [z_h, z_c] for the LSTM (0: none)
    bptt: int = 64  # steps per truncated-BPTT window
    batch: int = 32  # parallel streams
    lr: float = 3e-3  # Adam learning rate
    # share of the run (by steps or time, whichever ends it) at its end over which the
    # learning rate falls linearly from lr to 0 (0: constant)
    lr_decay: float = 0.3
    clip: float = 1.0  # global gradient-norm clip (0: none)
    steps: int | None = None  # updates to make; None (0 in TOML): until the time budget
    time_budget: float | None = 600.0  # seconds of training; None (0 in TOML): until steps
    seed: int = 0  # weights, data offsets and samples
    eval_every: int = 250  # updates between validation estimates
    eval_tokens: int = 50_000  # validation tokens per estimate, spread over the text (final: all)
    sample_every: int = 1000  # updates between printed samples (0: never)
    checkpoint_every: int = 500  # updates between checkpoints
    precision: str = "auto"  # "fp32", "bf16" or "auto" (bf16 where the CPU has BF16 instructions)

    @classmethod
    def from_dict(cls, d: dict) -> LMConfig:
        """Build from a mapping; unknown keys are refused, values checked."""
        checks.known_keys(d, [f.name for f in dataclasses.fields(cls)], "config key")
        d = dict(d)
        for k in _NO_LIMIT:  # TOML has no null: 0 stands for "no limit"
            if type(d.get(k)) in (int, float) and d[k] == 0:
                d[k] = None
        cfg = cls(**d)
        cfg.check()
        return cfg

    @classmethod
    def from_toml(cls, path, missing: dict | None = None) -> LMConfig:
        """Read a TOML file of settings; ``missing`` gives values for keys it lacks (else
        the defaults)."""
        path = Path(path)
        if not path.is_file():
            what = "is not a file" if path.exists() else "does not exist"
            raise ValueError(f"config file {path} {what}")
        try:
            d = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise ValueError(f"cannot read config file {path} ({e.strerror})") from None
        except RecursionError:
            raise ValueError(f"config file {path} is not valid TOML: nested too deeply") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"config file {path} is not valid TOML: {e}") from None
        except ValueError as e:  # an integer of too many digits
            raise ValueError(f"config file {path} is not valid TOML: {str(e)[:120]}") from None
        return cls.from_dict({**(missing or {}), **d})

    def to_toml(self) -> str:
        lines = ["# rnnlab language-model run configuration"]
        for k, v in dataclasses.asdict(self).items():
            if v is None and k in _NO_LIMIT:
                lines.append(f"{k} = 0  # no limit")
            elif v is None:
                continue  # absent key: the default (None)
            elif isinstance(v, str):
                lines.append(f"{k} = {json.dumps(v)}")
            else:
                lines.append(f"{k} = {v!r}".replace("True", "true").replace("False", "false"))
        return "\n".join(lines) + "\n"

    def check(self) -> None:
        if self.data is not None and not isinstance(self.data, str):
            raise ValueError(f"data must be a path (a string), got {self.data!r:.40}")
        checks.choice(self.tokens, "tokens", ("char", "word"))
        checks.choice(self.cell, "cell", tuple(LAYERS))
        for name in ("hidden", "layers", "bptt", "batch", "max_vocab", "eval_every",
                     "eval_tokens", "checkpoint_every"):
            checks.positive_int(getattr(self, name), name)
        checks.optional(checks.positive_int, self.steps, "steps")
        checks.optional(checks.positive_int, self.window, "window")
        if self.window is not None and "window" not in LAYERS[self.cell].options:
            raise ValueError(f"window applies to the ffnn cell only, got {self.window!r} "
                             f"with cell {self.cell!r}")
        checks.positive_number(self.lr, "lr")
        checks.number(self.lr_decay, "lr_decay", low=0, high=1)
        checks.optional(checks.positive_number, self.time_budget, "time_budget")
        checks.number(self.clip, "clip", low=0)
        checks.number(self.validation_fraction, "validation_fraction", low=0, high=1,
                      low_open=True, high_open=True)
        checks.integer(self.sample_every, "sample_every", minimum=0)
        checks.integer(self.proj_size, "proj_size", minimum=0)
        checks.boolean(self.peepholes, "peepholes")
        checks.boolean(self.layer_norm, "layer_norm")
        if self.layer_norm and "layer_norm" not in LAYERS[self.cell].options:
            raise ValueError(f"layer_norm applies to the lstm and gru cells only, got "
                             f"{self.layer_norm!r} with cell {self.cell!r}")
        for name in ("proj_size", "peepholes"):  # before the corpus is read
            if getattr(self, name) and name not in LAYERS[self.cell].options:
                raise ValueError(f"{name} applies to the lstm cell only, got "
                                 f"{getattr(self, name)!r} with cell {self.cell!r}")
        if self.proj_size >= self.hidden:
            raise ValueError(f"proj_size must be less than hidden_size {self.hidden} (as in "
                             f"PyTorch), got {self.proj_size}")
        self._check_regularization()
        checks.integer(self.seed, "seed", minimum=0)
        checks.choice(self.precision, "precision", ("fp32", "bf16", "auto"))
        if self.steps is None and self.time_budget is None:
            raise ValueError("give steps or time_budget (or both): training needs an end")


    def _check_regularization(self) -> None:
        """dropout, recurrent_dropout and zoneout, before the corpus is read."""
        from . import dropout

        if isinstance(self.zoneout, tuple):
            self.zoneout = list(self.zoneout)  # what TOML writes and reads back
        dropout.rate(self.dropout, "dropout")
        dropout.rate(self.recurrent_dropout, "recurrent_dropout")
        rates = dropout.zoneout_rates(self.zoneout, LAYERS[self.cell].Cell.n_state)
        on = {"dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout,
              "zoneout": any(rates)}
        if not LAYERS[self.cell].recurrent:
            for name, value in on.items():
                if value:
                    raise ValueError(f"{name} applies to the recurrent cells only, got "
                                     f"{getattr(self, name)!r} with cell {self.cell!r}")
        if self.dropout and self.layers < 2:
            raise ValueError(f"dropout between layers needs layers >= 2, got dropout="
                             f"{self.dropout!r} with layers={self.layers}")


_NO_LIMIT = ("steps", "time_budget")


def load_corpus(cfg: LMConfig):
    """The configured corpus: the default Shakespeare, or ``cfg.data`` with its tail held out."""
    if cfg.data is None:
        return default_corpus()
    text, starts = read_documents(cfg.data)
    return split_text(text, validation_fraction=cfg.validation_fraction, starts=starts,
                      description=f"{cfg.data} (last {cfg.validation_fraction:.0%} held out)")


@dataclass
class Run:
    """A run folder opened for sampling or evaluation."""

    path: Path
    config: LMConfig
    vocab: Vocab
    net: Network
    info: dict


#: settings a run folder's config.toml lacks when written before they existed: the value
#: that keeps the run as it was (a resumed run goes on as it began)
WRITTEN_BEFORE = {"lr_decay": 0.0}


def open_run(path) -> Run:
    """Open a run folder written by :func:`train`; refuses other versions and broken files."""
    path = Path(path)
    info = io.read_run_info(path, RUN_FORMAT, RUN_VERSION)
    cfg = LMConfig.from_toml(path / "config.toml", missing=WRITTEN_BEFORE)
    vocab_file = path / "vocab.json"
    if not vocab_file.is_file():
        raise ValueError(f"{path} has no vocab.json")
    try:
        vocab = Vocab.from_json(vocab_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read {vocab_file} ({str(e)[:80]})") from None
    except ValueError as e:
        raise ValueError(f"{vocab_file}: {e}") from None
    if vocab.tokens != cfg.tokens:
        raise ValueError(f"{path}: vocab.json holds {vocab.tokens} tokens, config.toml says "
                         f"{cfg.tokens}")
    net = load(path / "model.rnnlab")
    if not isinstance(net, Network) or net.output_size != len(vocab) \
            or net.rnn.input_size != len(vocab):
        raise ValueError(f"{path}: the model does not match the vocabulary")
    mine = (net.cell, net.rnn.hidden_size, net.rnn.num_layers, net.readout, net.output,
            net.config.get("window"))
    window = cfg.window
    if window is None and "window" in net.rnn.options:
        window = DEFAULT_WINDOW
    if mine != (cfg.cell, cfg.hidden, cfg.layers, "all", "softmax", window):
        theirs = "" if mine[-1] is None else f", window {mine[-1]}"
        ours = "" if window is None else f", window {window}"
        raise ValueError(f"{path}: the model (cell {net.cell}, hidden {net.rnn.hidden_size}, "
                         f"layers {net.rnn.num_layers}{theirs}) does not match config.toml "
                         f"(cell {cfg.cell}, hidden {cfg.hidden}, layers {cfg.layers}{ours})")
    return Run(path, cfg, vocab, net, info)
