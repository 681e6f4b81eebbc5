"""Document boundaries in language-model text: found, carried into the batches, and reset
at in training and evaluation."""

import numpy as np
import pytest

from rnnlab import lm
from rnnlab.data.corpus import default_corpus, split_text
from rnnlab.data.text import StreamBatcher, Vocab, read_documents, read_text
from rnnlab.train import Trainer

QUIET = dict(progress=False, echo=lambda *a: None)
DOCS = {"a.txt": "alpha beta gamma.\n" * 6, "b.txt": "delta epsilon.\n\n" * 7,
        "c.txt": "zeta eta theta iota.\n" * 5}


def folder(tmp_path):
    d = tmp_path / "docs"
    d.mkdir()
    for name, text in DOCS.items():
        (d / name).write_text(text, encoding="utf-8")
    return d


def test_read_documents_finds_where_each_file_begins(tmp_path):
    text, starts = read_documents(folder(tmp_path))
    assert text == read_text(tmp_path / "docs")
    assert len(starts) == 3 and starts[0] == 0
    for start, doc in zip(starts, DOCS.values(), strict=True):
        assert text[start:start + len(doc.rstrip("\n"))] == doc.rstrip("\n")
    one = tmp_path / "one.txt"
    one.write_text("just one\n", encoding="utf-8")
    assert read_documents(one) == ("just one\n", (0,))


def test_split_text_keeps_each_sides_starts():
    text = "aaaa\nbbbb\ncccc\ndddd\n"
    corpus = split_text(text, validation_fraction=0.3, starts=(0, 5, 10, 15))
    assert corpus.train == "aaaa\nbbbb\ncccc\n" and corpus.validation == "dddd\n"
    assert corpus.train_starts == (0, 5, 10) and corpus.validation_starts == (0,)
    assert split_text(text, validation_fraction=0.3).train_starts == ()


def test_the_default_corpus_marks_its_plays():
    corpus = default_corpus()
    assert len(corpus.train_starts) == 33 and len(corpus.validation_starts) == 3
    for text, starts in ((corpus.train, corpus.train_starts),
                         (corpus.validation, corpus.validation_starts)):
        for s in starts[1:]:
            assert text[s - 3:s] == "\n\n\n" and text[s] != "\n"


@pytest.mark.parametrize("seed", [None, 3])
def test_batcher_windows_mark_the_document_starts(seed):
    ids = np.arange(203)
    starts = [0, 17, 50, 51, 140]
    batcher = StreamBatcher(ids, 4, 10, seed=seed, starts=starts)
    seen = []
    for x, _, reset in batcher.windows():
        if reset is not None:
            assert reset.shape == x.shape and reset.dtype == bool
            seen += [int(v) for v in x[reset]]
    # ids are positions: every start inside the windows read is marked, nothing else
    read = set(np.concatenate([x.ravel() for x, _ in StreamBatcher(ids, 4, 10, seed=seed)]))
    assert sorted(seen) == sorted(s for s in starts[1:] if s in read)
    assert batcher.epoch == 1  # windows() moves the position as iterating does


def test_batcher_refuses_bad_starts():
    with pytest.raises(ValueError, match=r"starts must be positions in \[0, 50\), got 0 to 50"):
        StreamBatcher(np.arange(50), 2, 5, starts=[0, 50])
    with pytest.raises(ValueError, match="starts must be a 1-D array of token positions"):
        StreamBatcher(np.arange(50), 2, 5, starts=[[1]])


@pytest.mark.parametrize("tokens", ["char", "word"])
def test_encode_begins_a_token_at_every_document(tokens, tmp_path):
    text, starts = read_documents(folder(tmp_path))
    vocab = Vocab.build(text, tokens=tokens)
    ids, at = lm.encode(vocab, text, starts)
    assert len(at) == 3 and at[0] == 0
    assert vocab.decode(ids) == text
    for s, a in zip(starts, at, strict=True):
        assert vocab.decode(ids[a:]) == text[s:]


def test_the_language_model_resets_at_document_starts(tmp_path, monkeypatch):
    """Training on a folder hands every window's resets to the trainer, at exactly the
    windows' document starts, and validation reads the held-out text with its own."""
    resets = []
    real = Trainer.train_step

    def spy(self, x, y, **kw):
        resets.append(kw.get("reset"))
        return real(self, x, y, **kw)

    monkeypatch.setattr(Trainer, "train_step", spy)
    losses = []
    real_loss = lm.stream_loss

    def loss_spy(net, ids, **kw):
        losses.append(kw.get("starts"))
        return real_loss(net, ids, **kw)

    monkeypatch.setattr(lm, "stream_loss", loss_spy)
    cfg = lm.LMConfig(data=str(folder(tmp_path)), steps=12, hidden=8, bptt=8, batch=3,
                      time_budget=None, eval_every=100, sample_every=0, checkpoint_every=100,
                      eval_tokens=50, validation_fraction=0.4)
    lm.train(cfg, out=tmp_path / "run", **QUIET)
    assert len(resets) == 12
    # the held-out 40 % begins in b.txt, so c.txt's start is validation's
    text, starts = read_documents(cfg.data)
    corpus = lm.load_corpus(cfg)
    assert corpus.train_starts == starts[:2] and len(corpus.validation_starts) == 2
    ids, at = lm.encode(Vocab.build(corpus.train), corpus.train, corpus.train_starts)
    batcher = StreamBatcher(ids, 3, 8, seed=0, starts=at)
    want = []
    while len(want) < 12:
        want += [r for _, _, r in batcher.windows()]
    for got, expected in zip(resets, want[:12], strict=True):
        assert (got is None) == (expected is None)
        if got is not None:
            np.testing.assert_array_equal(got, expected)
    assert sum(r is not None for r in resets) >= 1
    assert losses and all(s is not None and len(s) == 2 for s in losses)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_stream_loss_with_starts_equals_documents_scored_apart(cell):
    """With resets, scoring the joined stream as one piece gives each document's loss as if
    it were scored alone (one stream, windows that end where documents do)."""
    from rnnlab import Network

    vocab = Vocab.build("abcdefgh\n")
    docs = ["abcabcabcabc\n", "hgfedcbahgfe\n", "aabbccddeeff\n"]  # 13 characters each
    net = Network(len(vocab), 6, len(vocab), cell=cell, output="softmax", readout="all",
                  seed=1, dtype=np.float64)
    ids = vocab.encode("".join(docs) + "a")
    joined, n = lm.stream_loss(net, ids, batch=1, window=13, starts=[0, 13, 26])
    apart = []
    for i, d in enumerate(docs):
        nxt = docs[i + 1][0] if i + 1 < len(docs) else "a"
        apart.append(lm.stream_loss(net, vocab.encode(d + nxt), batch=1, window=13)[0])
    assert n == 39
    assert joined == pytest.approx(np.mean(apart), abs=1e-12)
    carried, _ = lm.stream_loss(net, ids, batch=1, window=13)
    assert abs(carried - joined) > 1e-4  # without the resets the memory carries over
