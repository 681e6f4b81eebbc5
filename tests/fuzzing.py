"""A seeded mutator for rnnlab's file loaders, and the contract every loader must keep.

The contract: any input either loads (and what it loads can be used) or raises a
ValueError of one line; no other exception, no allocation beyond a small multiple of the
file's own size, no hang. Nothing can be executed, since no loader unpickles; object
arrays are among the mutations, and must be refused.

Loaders (:data:`LOADERS`): ``model`` (``rnnlab.load``), ``checkpoint``
(``Trainer.load_checkpoint``, then a resumed ``fit`` from it), ``vocab``
(``Vocab.from_json``), ``run_json`` (``io.read_run_info``), ``config``
(``LMConfig.from_toml``) and ``run_folder`` (``lm.open_run``, one of its files mutated).

Used by ``benchmarks/fuzz_loaders.py`` (the measured campaign) and
``tests/test_fuzz_loaders.py`` (a fast seeded subset). One ``numpy.random.Generator``
drives every choice, so a seed names the same inputs on any machine.
"""

from __future__ import annotations

import io as _io
import json
import shutil
import signal
import struct
import tomllib
import traceback
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import numpy as np

import rnnlab
from rnnlab import io, lm
from rnnlab.data.vocab import Vocab

#: a load may allocate at most this multiple of the input's size, plus SLACK bytes
#: (the slack covers the fixed costs: a character vocabulary's code-point table is up to
#: 4.4 MB, NumPy's and zipfile's buffers)
ALLOC_FACTOR, SLACK = 8, 8 * 2**20
#: seconds an input may take before it counts as a hang
TIME_LIMIT = 10.0

# ----------------------------------------------------------------------------------------
# the seed files


def make_seeds(folder) -> dict:
    """Write one valid file of every kind under ``folder``; returns {name: bytes}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    net = rnnlab.Network(3, 4, 3, cell="lstm", num_layers=2, seed=0)
    net.save(folder / "net.rnnlab")
    rnnlab.save(rnnlab.GRU(2, 3, seed=0), folder / "layer.rnnlab")
    tr, X, Y = _trainer()
    history = tr.fit(X, Y, epochs=1, validation=(X, Y))
    best = (0.5, 1, {k: v.copy() for k, v in tr.net.params.items()})
    tr.save_checkpoint(folder / "c.ckpt", states=[tr.net.rnn.initial_state(2)],
                       position={"epoch": 1, "batch": 1, "window": 1}, history=history,
                       best=best, extra={"note": "fuzz"})
    vocab = Vocab.build("the cat sat on the mat\n")
    words = Vocab.build("the cat sat on the mat\n", tokens="word")
    run = folder / "run"
    run.mkdir(exist_ok=True)
    cfg = lm.LMConfig(hidden=4, bptt=4, batch=2, steps=10, time_budget=None)
    (run / "config.toml").write_text(cfg.to_toml(), encoding="utf-8")
    (run / "vocab.json").write_text(vocab.to_json(), encoding="utf-8")
    rnnlab.Network(len(vocab), 4, len(vocab), seed=0).save(run / "model.rnnlab")
    io.write_json(run / "run.json", {
        "format": lm.RUN_FORMAT, "version": lm.RUN_VERSION, "rnnlab": rnnlab.__version__,
        "corpus": "fuzz", "vocab_size": len(vocab), "tokens": "char", "train_tokens": 20,
        "validation_tokens": 3, "parameters": 100, "steps": 10, "val_nats": 1.5})
    return {"net": (folder / "net.rnnlab").read_bytes(),
            "layer": (folder / "layer.rnnlab").read_bytes(),
            "checkpoint": (folder / "c.ckpt").read_bytes(),
            "vocab": vocab.to_json().encode(), "vocab_word": words.to_json().encode(),
            "run.json": (run / "run.json").read_bytes(),
            "config.toml": (run / "config.toml").read_bytes(),
            "run/model.rnnlab": (run / "model.rnnlab").read_bytes()}


def _trainer():
    """The trainer the checkpoint seed is written by, and read back with, and its data."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4, 4, 2)).astype(np.float32)
    Y = rng.integers(0, 2, size=(4, 4))
    net = rnnlab.Network(2, 3, 2, cell="lstm", seed=0)
    return rnnlab.Trainer(net, "adam", 1e-2, bptt_steps=2, batch_size=2, seed=0,
                          progress=False), X, Y


# ----------------------------------------------------------------------------------------
# values of the wrong type, size or depth

DEEP = "\x00deep\x00"  # replaced by nesting thousands of levels deep once serialised


def palette(rng) -> object:
    """A value of a random wrong type, size or depth."""
    choices = [None, True, False, 0, -1, 1, 2, 7, 2**63, 10**30, -10**30, 1e308, -0.0, 0.5,
               float("nan"), float("inf"), "", "x", "lstm", "char", "\ud800", "a" * 5000,
               [], [1, 2], [None], [[1], [2, [3]]], {}, {"a": 1}, {"epoch": "x"},
               {"format": "rnnlab-model"}, DEEP, [0.5, 1, 2], [1, 2**62], "1" * 5000]
    return choices[int(rng.integers(len(choices)))]


def _paths(obj, path=()):
    yield path
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*path, i))


def mutate_tree(obj, rng):
    """A copy of a JSON-like tree with one node replaced, deleted, renamed or added to.

    The node is drawn by depth first (every depth equally likely), so the few top-level
    fields are hit as often as the many entries of a long list.
    """
    obj = json.loads(json.dumps(obj))
    paths = list(_paths(obj))
    depths = sorted({len(p) for p in paths})
    if len(depths) > 1 and rng.random() < 0.95:
        depths = depths[1:]  # the whole document replaced: now and then
    depth = depths[int(rng.integers(len(depths)))]
    at = [p for p in paths if len(p) == depth]
    path = at[int(rng.integers(len(at)))]
    if not path:
        return palette(rng)
    parent = obj
    for k in path[:-1]:
        parent = parent[k]
    key, op = path[-1], int(rng.integers(7))
    if op == 0 and isinstance(parent, dict):
        del parent[key]
    elif op == 1 and isinstance(parent, dict):
        parent[str(key) + "_x"] = parent.pop(key)
    elif op == 2 and isinstance(parent, (dict, list)):
        node = parent[key]
        if isinstance(node, dict):
            node["unexpected"] = palette(rng)
        elif isinstance(node, list):
            node.extend([palette(rng)] * int(rng.integers(1, 3)) if node else [palette(rng)])
        else:
            parent[key] = [node]
    elif op == 3:  # a value of the right type taken from elsewhere in the tree
        node = parent[key]
        alike = [q for q in paths if q and q != path and type(_get(obj, q)) is type(node)]
        if alike:
            parent[key] = json.loads(json.dumps(_get(obj, alike[int(rng.integers(len(alike)))])))
    else:
        parent[key] = palette(rng)
    return obj


def _get(obj, path):
    for k in path:
        obj = obj[k]
    return obj


def dump_json(obj) -> bytes:
    text = json.dumps(obj, ensure_ascii=False)
    depth = 20000
    return text.replace(json.dumps(DEEP), "[" * depth + "]" * depth).encode("utf-8",
                                                                           "surrogatepass")


# ----------------------------------------------------------------------------------------
# byte-level mutations


def mutate_bytes(data: bytes, rng) -> bytes:
    """One or more of: byte flips, truncation, deletion, duplication, invalid UTF-8."""
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        op = int(rng.integers(7))
        n = len(b)
        if n == 0:
            b += bytes(rng.integers(0, 256, 8, dtype=np.uint8))
            continue
        i = int(rng.integers(n))
        if op == 0:  # flip a few bytes
            for j in rng.integers(0, n, int(rng.integers(1, 9))):
                b[j] = int(rng.integers(256))
        elif op == 1:  # flip one bit
            b[i] ^= 1 << int(rng.integers(8))
        elif op == 2:  # truncate
            del b[i:]
        elif op == 3:  # delete a range
            del b[i:i + int(rng.integers(1, 64))]
        elif op == 4:  # duplicate a range
            b[i:i] = b[i:i + int(rng.integers(1, 256))]
        elif op == 5:  # invalid UTF-8
            bad = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xef\xbb\xbf"]
            b[i:i] = bad[int(rng.integers(len(bad)))]
        else:  # random bytes
            b[i:i] = bytes(rng.integers(0, 256, int(rng.integers(1, 32)), dtype=np.uint8))
    return bytes(b)


# ----------------------------------------------------------------------------------------
# archives: members, the JSON header, .npy headers


def _members(data: bytes) -> list:
    with zipfile.ZipFile(_io.BytesIO(data)) as z:
        return [(i.filename, z.read(i)) for i in z.infolist()]


def _zip(members, *, compress_one=None) -> bytes:
    buf = _io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name": a mutation on purpose
        with zipfile.ZipFile(buf, "w") as z:
            for name, body in members:
                kind = zipfile.ZIP_DEFLATED if name == compress_one else zipfile.ZIP_STORED
                z.writestr(name, body, compress_type=kind)
    return buf.getvalue()


def _npy(header: str, body: bytes, version: int = 1) -> bytes:
    header = header + " " * (-(len(header) + 11) % 64) + "\n"
    if version == 1:
        size = struct.pack("<H", len(header))
    else:
        size = struct.pack("<I", len(header))
    return b"\x93NUMPY" + bytes([version, 0]) + size + header.encode("latin1") + body


def _npy_parts(member: bytes):
    """(header dict, body) of a .npy member."""
    f = _io.BytesIO(member)
    version = np.lib.format.read_magic(f)
    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
            else np.lib.format.read_array_header_2_0)
    shape, fortran, dtype = read(f)
    return {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": fortran,
            "shape": shape}, member[f.tell():]


DESCRS = ["|O", "<U4", "|V8", "|S4", "<c8", "<f8", "<f4", ">f4", "<i4", "|u1", "|b1", "<f2",
          [("a", "<f4"), ("b", "<f4")], [("o", "|O")], "garbage", 7, None]
SHAPES = [(), (0,), (1,), (-1,), (10**13,), (2**62, 2**62), (3, 4), (4, 3), (1, 12), (12,),
          (2, 3, 2), ("a",), (1.5,), None, 3, (10**30,)]


def mutate_npy(member: bytes, rng) -> bytes:
    """A .npy member with its header edited: shape, dtype, order, format version; the data
    kept, or resized to what the new header declares (so it passes the size check)."""
    try:
        header, body = _npy_parts(member)
    except ValueError:
        return mutate_bytes(member, rng)
    op = int(rng.integers(5))
    if op == 0:
        header["shape"] = SHAPES[int(rng.integers(len(SHAPES)))]
    elif op == 1:
        header["descr"] = DESCRS[int(rng.integers(len(DESCRS)))]
    elif op == 2:
        header["fortran_order"] = [True, 1, "x", None][int(rng.integers(4))]
    elif op == 3:
        header = {"shape": header["shape"]} if rng.random() < 0.5 else {**header, "x": 1}
    else:  # a plausible other array: same bytes, other shape
        n = len(body) // 4
        header["shape"] = [(n,), (1, n), (n, 1), (n // 2, 2) if n % 2 == 0 else (n,)][
            int(rng.integers(4))]
    if rng.random() < 0.5:  # make the body the size the header declares, when it can
        try:
            dt = np.dtype(header["descr"])
            size = int(np.prod(header["shape"], dtype=np.int64)) * dt.itemsize
            if 0 <= size <= 4 * len(body) + 64:
                body = (body * (size // max(len(body), 1) + 1))[:size]
        except Exception:  # noqa: BLE001 (an invalid header on purpose: body kept)
            pass
    return _npy(repr(header), body, version=1 if rng.random() < 0.8 else int(rng.integers(2, 4)))


def mutate_archive(data: bytes, rng) -> bytes:
    """An archive with its members deleted, duplicated, renamed, swapped, its header or a
    .npy header edited, a member compressed, or its bytes mutated."""
    members = _members(data)
    op = int(rng.integers(8))
    i = int(rng.integers(len(members)))
    name, body = members[i]
    if op == 0:
        del members[i]
    elif op == 1:
        members.insert(int(rng.integers(len(members) + 1)), (name, body))
    elif op == 2:
        members[i] = (["meta.npy", "param/x.npy", name + "x", "x", "../evil.npy",
                       name.replace("param/", "best/")][int(rng.integers(6))], body)
    elif op == 3:
        j = int(rng.integers(len(members)))
        members[i], members[j] = (name, members[j][1]), (members[j][0], body)
    elif op == 4:
        return _zip(members, compress_one=name)
    elif op in (5, 6):  # the JSON header: the most structured target, so hit twice as often
        k = next((j for j, (n, _) in enumerate(members) if n == "meta.npy"), None)
        if k is not None:
            header, meta_body = _npy_parts(members[k][1])
            meta = json.loads(meta_body.decode("utf-8"))
            text = dump_json(mutate_tree(meta, rng))
            members[k] = ("meta.npy", _npy(repr({**header, "shape": (len(text),)}), text))
    else:
        members[i] = (name, mutate_npy(body, rng))
    return _zip(members)


def mutate_binary(data: bytes, rng) -> bytes:
    return mutate_archive(data, rng) if rng.random() < 0.75 else mutate_bytes(data, rng)


# ----------------------------------------------------------------------------------------
# text files: JSON and TOML


def mutate_json_text(data: bytes, rng) -> bytes:
    if rng.random() < 0.6:
        return dump_json(mutate_tree(json.loads(data), rng))
    return mutate_bytes(data, rng)


def _toml_value(v) -> str:
    if v == DEEP:
        return "[" * 20000 + "]" * 20000
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v if x is not None) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()
                               if x is not None) + "}"
    return "1979-05-27T07:32:00Z"  # None has no TOML spelling: a datetime instead


def mutate_toml_text(data: bytes, rng) -> bytes:
    if rng.random() < 0.6:
        tree = mutate_tree(tomllib.loads(data.decode("utf-8")), rng)
        if not isinstance(tree, dict):
            tree = {"value": tree}
        lines = [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in tree.items()]
        return "\n".join(lines).encode("utf-8", "surrogatepass")
    return mutate_bytes(data, rng)


# ----------------------------------------------------------------------------------------
# the loaders, each given an input's bytes and a scratch folder


def load_model(data, seeds, tmp):
    (tmp / "m.rnnlab").write_bytes(data)
    obj = rnnlab.load(tmp / "m.rnnlab")
    layer = getattr(obj, "rnn", obj)
    x = np.zeros((1, 2, layer.input_size), layer.dtype)
    return obj.forward(x)  # what loaded can be used


def load_checkpoint(data, seeds, tmp):
    (tmp / "c.ckpt").write_bytes(data)
    tr, X, Y = _trainer()
    tr.load_checkpoint(tmp / "c.ckpt")
    tr2, X, Y = _trainer()
    return tr2.fit(X, Y, epochs=2, validation=(X, Y), resume=tmp / "c.ckpt")


def load_vocab(data, seeds, tmp):
    v = Vocab.from_json(data.decode("utf-8", "replace"))
    return v.decode(v.encode("".join(v.itos[len(v.itos) // 2:]), unk=True))


def load_run_json(data, seeds, tmp):
    run = tmp / "r"
    run.mkdir(exist_ok=True)
    (run / "run.json").write_bytes(data)
    return io.read_run_info(run, lm.RUN_FORMAT, lm.RUN_VERSION)


def load_config(data, seeds, tmp):
    (tmp / "config.toml").write_bytes(data)
    return lm.LMConfig.from_toml(tmp / "config.toml").to_toml()


RUN_FILES = {"run.json": "run.json", "config.toml": "config.toml", "vocab.json": "vocab",
             "model.rnnlab": "run/model.rnnlab"}


def load_run_folder(data, seeds, tmp):
    """``data`` is ``name\\0bytes``: the run-folder file that is replaced, and by what
    (``-`` for a file deleted, ``/`` for a folder in its place)."""
    name, _, body = data.partition(b"\0")
    run = tmp / "run"
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir()
    for file, seed in RUN_FILES.items():
        (run / file).write_bytes(seeds[seed])
    target = run / name.decode()
    if body == b"-":
        target.unlink()
    elif body == b"/":
        target.unlink()
        target.mkdir()
    else:
        target.write_bytes(body)
    r = lm.open_run(run)
    return "".join(lm.generate(r.net, r.vocab, "", 5, rng=0))


def gen_model(seeds, rng):
    return mutate_binary(seeds["net" if rng.random() < 0.7 else "layer"], rng)


def gen_checkpoint(seeds, rng):
    return mutate_binary(seeds["checkpoint"], rng)


def gen_vocab(seeds, rng):
    return mutate_json_text(seeds["vocab" if rng.random() < 0.6 else "vocab_word"], rng)


def gen_run_json(seeds, rng):
    return mutate_json_text(seeds["run.json"], rng)


def gen_config(seeds, rng):
    return mutate_toml_text(seeds["config.toml"], rng)


def gen_run_folder(seeds, rng):
    name = list(RUN_FILES)[int(rng.integers(len(RUN_FILES)))]
    r = rng.random()
    if r < 0.05:
        body = b"-" if rng.random() < 0.5 else b"/"
    else:
        seed = seeds[RUN_FILES[name]]
        body = {"run.json": mutate_json_text, "vocab.json": mutate_json_text,
                "config.toml": mutate_toml_text, "model.rnnlab": mutate_binary}[name](seed, rng)
    return name.encode() + b"\0" + body


#: name -> (input generator, loader)
LOADERS = {
    "model": (gen_model, load_model),
    "checkpoint": (gen_checkpoint, load_checkpoint),
    "vocab": (gen_vocab, load_vocab),
    "run_json": (gen_run_json, load_run_json),
    "config": (gen_config, load_config),
    "run_folder": (gen_run_folder, load_run_folder),
}


# ----------------------------------------------------------------------------------------
# the contract


class Hang(BaseException):
    """An input took longer than :data:`TIME_LIMIT` (a BaseException: no loader's
    ``except Exception`` may swallow it)."""


def _alarm(signum, frame):
    raise Hang


def try_input(name: str, data: bytes, seeds: dict, tmp: Path) -> tuple[str, str]:
    """Load one input: ``("loaded", "")``, ``("ValueError", message)`` or, for a breach of
    the contract, (what went wrong, its message)."""
    loader = LOADERS[name][1]
    tracemalloc.start()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loader(data, seeds, tmp)
        outcome = ("loaded", "")
    except ValueError as e:
        message = str(e)
        outcome = (("ValueError", message) if message and "\n" not in message
                   else ("ValueError of several lines", message))
    except Hang:
        outcome = ("hang", f"over {TIME_LIMIT} s")
    except BaseException as e:  # noqa: BLE001 (every other exception breaks the contract)
        if isinstance(e, KeyboardInterrupt):
            raise
        outcome = (type(e).__name__, f"{str(e)[:200]} (at {_where(e)})")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    if peak > ALLOC_FACTOR * len(data) + SLACK and outcome[0] in ("loaded", "ValueError"):
        outcome = ("allocation", f"{peak:,} bytes for a {len(data):,}-byte input")
    return outcome


def _where(e) -> str:
    """The last line of rnnlab's own code in ``e``'s traceback: where to fix it."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if "/rnnlab/" in f.filename]
    f = frames[-1] if frames else traceback.extract_tb(e.__traceback__)[-1]
    return f"{Path(f.filename).name}:{f.lineno}"


def inputs(name: str, seeds: dict, n: int, seed: int):
    """The ``n`` inputs of loader ``name`` for ``seed``: the same on every machine."""
    rng = np.random.default_rng([seed, list(LOADERS).index(name)])
    gen = LOADERS[name][0]
    for _ in range(n):
        yield gen(seeds, rng)
