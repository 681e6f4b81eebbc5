"""Loader fuzzing: a seeded subset of ``benchmarks/fuzz_loaders.py``, and one regression
test per class of failure it found. Each input loads or raises a ValueError of one line;
no other exception, no allocation beyond a small multiple of its size, no hang."""

import json
import zipfile

import numpy as np
import pytest

import fuzzing
import rnnlab
from rnnlab import io, lm
from rnnlab.data.vocab import Vocab

#: inputs per loader here (the benchmark runs thousands): the run folder and the
#: checkpoint (a resumed fit) are the slow ones
N = {"model": 200, "checkpoint": 100, "vocab": 300, "run_json": 300, "config": 300,
     "run_folder": 100}


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return fuzzing.make_seeds(tmp_path_factory.mktemp("seeds"))


@pytest.mark.parametrize("name", list(fuzzing.LOADERS))
def test_every_mutated_input_loads_or_is_one_value_error(name, seeds, tmp_path):
    broken = []
    for i, data in enumerate(fuzzing.inputs(name, seeds, N[name], seed=0)):
        kind, message = fuzzing.try_input(name, data, seeds, tmp_path)
        if kind not in ("loaded", "ValueError"):
            broken.append(f"input {i}: {kind}: {message}")
    assert not broken, "\n".join(broken[:5])


def test_the_seed_files_load(seeds, tmp_path):
    """The mutations start from files that load: a refusal is the mutation's doing."""
    cases = {"model": seeds["net"], "checkpoint": seeds["checkpoint"], "vocab": seeds["vocab"],
             "run_json": seeds["run.json"], "config": seeds["config.toml"],
             "run_folder": b"run.json\0" + seeds["run.json"]}
    for name, data in cases.items():
        assert fuzzing.try_input(name, data, seeds, tmp_path) == ("loaded", ""), name


# ----------------------------------------------------------------------------------------
# regressions: one per class of failure the fuzzer found


def _rewrite_meta(src, dst, edit):
    """Copy the archive ``src`` to ``dst`` with its JSON header changed by ``edit(meta)``."""
    arrays = io.read_npz(src)
    meta = json.loads(arrays["meta"].tobytes())
    edit(meta)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    io.atomic_write_npz(dst, arrays)


@pytest.fixture
def checkpoint_file(tmp_path):
    tr, X, Y = fuzzing._trainer()
    history = tr.fit(X, Y, epochs=1, validation=(X, Y))
    path = tmp_path / "c.ckpt"
    tr.save_checkpoint(path, states=[tr.net.rnn.initial_state(2)], history=history,
                       position={"epoch": 1, "batch": 1, "window": 1},
                       best=(0.5, 1, {k: v.copy() for k, v in tr.net.params.items()}))
    return path


def _set(key, value):
    def edit(meta):
        *parents, last = key.split(".")
        d = meta
        for k in parents:
            d = d[k]
        if value is KeyError:
            del d[last]
        else:
            d[last] = value
    return edit


@pytest.mark.parametrize("key, value, message", [
    # were KeyError, TypeError or AttributeError inside read or a resumed fit
    ("network", KeyError, "network must be a mapping, got null"),
    ("trainer", [1], "trainer must be a mapping, got list"),
    ("trainer.bptt", KeyError, "other training settings"),
    ("trainer.bptt", 2, "other training settings"),
    ("step", "3", "step must be a non-negative integer, got '3'"),
    ("skipped", -1, "skipped must be a non-negative integer"),
    ("position", KeyError, "position must be a mapping"),
    ("position.window", KeyError, "position must have the keys"),
    ("position.epoch", 0.5, "position epoch must be a non-negative integer"),
    ("history", "x", "history must be a mapping, got str"),
    ("history.train_loss", 1.5, "history train_loss has the wrong type"),
    ("history.unexpected", 1, "history has unknown keys"),
    ("history.best_epoch", "1", "history best_epoch has the wrong type"),
    # was a loop of 10^18 turns: a hang
    ("n_states", 10**18, "n_states must be an integer from 0 to the 2 state arrays"),
    ("n_states", None, "n_states must be an integer"),
    ("n_states", 0, "do not match n_states 0"),
    ("best", [0.5], r"best must be null or \[validation loss, epoch\]"),
    ("best", None, "best/ arrays without a best epoch"),
    ("extra", [], "extra must be a mapping, got list"),
])
def test_a_checkpoint_header_field_of_the_wrong_type_is_refused(checkpoint_file, tmp_path,
                                                                key, value, message):
    bad = tmp_path / "bad.ckpt"
    _rewrite_meta(checkpoint_file, bad, _set(key, value))
    tr, _, _ = fuzzing._trainer()
    before = {k: v.copy() for k, v in tr.net.params.items()}
    with pytest.raises(ValueError, match=message):
        tr.load_checkpoint(bad)
    for k, v in before.items():  # refused before anything changed
        np.testing.assert_array_equal(tr.net.params[k], v)


def test_a_checkpoint_state_of_the_wrong_shape_is_refused(checkpoint_file, tmp_path):
    arrays = io.read_npz(checkpoint_file)
    arrays["state/0/1"] = np.zeros((1, 2, 5), np.float32)
    bad = tmp_path / "bad.ckpt"
    io.atomic_write_npz(bad, arrays)
    tr, _, _ = fuzzing._trainer()
    with pytest.raises(ValueError, match=r"state 0 has shape \(1, 2, 5\)"):
        tr.load_checkpoint(bad)


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "m.rnnlab"
    rnnlab.Network(3, 4, 3, seed=0).save(path)
    return path


@pytest.mark.parametrize("key, value, message", [
    ("kind", ["network"], r"unknown kind \['network'\]"),  # was TypeError: unhashable
    ("config", "x", "invalid configuration: expected a mapping, got str"),
    # was an attempt to allocate 10^5 x 4 x 10^5 floats (MemoryError or a hang)
    ("config.hidden_size", 100_000, "declares 40,001,900,003 parameters and holds 143"),
    ("config.num_layers", 10**18, "declares .* parameters and holds 143"),
    ("version", True, "format version True"),  # True == 1 passed for version 1
])
def test_a_model_header_that_lies_is_refused_before_building(model_file, tmp_path, key, value,
                                                             message):
    bad = tmp_path / "bad.rnnlab"
    _rewrite_meta(model_file, bad, _set(key, value))
    with pytest.raises(ValueError, match=message):
        rnnlab.load(bad)


DEEP = b"[" * 100_000 + b"]" * 100_000


def test_json_nested_too_deeply_is_a_value_error(model_file, tmp_path):
    """Was RecursionError from the JSON parser, in every JSON loader."""
    arrays = io.read_npz(model_file)
    arrays["meta"] = np.frombuffer(DEEP, np.uint8)
    io.atomic_write_npz(tmp_path / "deep.rnnlab", arrays)
    with pytest.raises(ValueError, match="nested too deeply"):
        rnnlab.load(tmp_path / "deep.rnnlab")
    with pytest.raises(ValueError, match="nested too deeply"):
        Vocab.from_json(DEEP.decode())
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_bytes(DEEP)
    with pytest.raises(ValueError, match="run.json is corrupt .*nested too deeply"):
        io.read_run_info(run, lm.RUN_FORMAT, lm.RUN_VERSION)
    (tmp_path / "c.toml").write_bytes(b"hidden = " + DEEP)
    with pytest.raises(ValueError, match="not valid TOML: nested too deeply"):
        lm.LMConfig.from_toml(tmp_path / "c.toml")


def test_a_number_of_too_many_digits_is_a_value_error_naming_the_file(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text('{"format": "rnnlab-run", "version": 1' + "0" * 5000 + "}")
    with pytest.raises(ValueError, match="run.json is corrupt"):
        io.read_run_info(run, lm.RUN_FORMAT, lm.RUN_VERSION)


def test_folders_in_place_of_run_files_are_refused(seeds, tmp_path):
    """Was IsADirectoryError from reading run.json, config.toml or vocab.json."""
    for name, message in [("run.json", "no run.json"), ("config.toml", "is not a file"),
                          ("vocab.json", "no vocab.json")]:
        kind, text = fuzzing.try_input("run_folder", name.encode() + b"\0/", seeds, tmp_path)
        assert kind == "ValueError" and message in text, (name, kind, text)


def test_invalid_utf8_in_vocab_json_is_refused(seeds, tmp_path):
    """Was UnicodeDecodeError out of open_run."""
    kind, text = fuzzing.try_input("run_folder", b"vocab.json\0\xff{}", seeds, tmp_path)
    assert kind == "ValueError" and "vocab.json" in text


def test_config_toml_that_does_not_match_the_model_is_refused(seeds, tmp_path):
    """A config.toml with hidden = 10^9 would have a resumed run build that network."""
    toml = seeds["config.toml"].replace(b"hidden = 4", b"hidden = 1000000000")
    kind, text = fuzzing.try_input("run_folder", b"config.toml\0" + toml, seeds, tmp_path)
    assert kind == "ValueError" and "does not match config.toml" in text


@pytest.mark.parametrize("text, message", [
    # False == 0 was taken for 0, "no limit"
    ("steps = false\ntime_budget = 0", "steps must be a positive integer, got False"),
    ('data = 3\nsteps = 1', "data must be a path"),
])
def test_toml_values_of_the_wrong_type_are_refused(tmp_path, text, message):
    (tmp_path / "c.toml").write_text(text)
    with pytest.raises(ValueError, match=message):
        lm.LMConfig.from_toml(tmp_path / "c.toml")


def test_an_encrypted_flag_or_unknown_zip_version_is_a_value_error(model_file, tmp_path):
    """Were RuntimeError ("password required") and NotImplementedError from zipfile."""
    data = bytearray(model_file.read_bytes())
    central = data.rfind(b"PK\x01\x02")  # the last member's central directory entry
    for offset, value, name in [(8, 1, "encrypted"), (6, 98, "version")]:
        bad = bytearray(data)
        bad[central + offset] = value
        (tmp_path / f"{name}.rnnlab").write_bytes(bytes(bad))
        with pytest.raises(ValueError, match="is not a readable rnnlab model file"):
            rnnlab.load(tmp_path / f"{name}.rnnlab")


def test_a_long_duplicate_list_in_a_vocabulary_is_found_in_one_pass():
    """Finding the repeated token was quadratic: 10^5 tokens took minutes."""
    itos = ["\ufffd"] + [chr(0x4E00 + i) for i in range(20000)] * 2
    doc = json.dumps({"format": "rnnlab-vocab", "version": 1, "tokens": "char", "itos": itos})
    with pytest.raises(ValueError, match="repeats the token"):
        Vocab.from_json(doc)


def test_zip_members_are_what_the_mutator_edits(seeds):
    """The archive mutations reach the members: the seed has a meta and parameters."""
    with zipfile.ZipFile(__import__("io").BytesIO(seeds["checkpoint"])) as z:
        names = z.namelist()
    assert "meta.npy" in names and any(n.startswith("state/") for n in names)


def test_a_checkpoint_positioned_past_the_last_batch_resumes(checkpoint_file, tmp_path):
    """Was TypeError formatting the epoch's loss, None for an epoch of no updates."""
    bad = tmp_path / "late.ckpt"
    _rewrite_meta(checkpoint_file, bad, _set("position.batch", 7))
    tr, X, Y = fuzzing._trainer()
    history = tr.fit(X, Y, epochs=2, resume=bad)
    assert history.train_loss[-1] is None
