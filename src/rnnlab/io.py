"""Files: NumPy ``.npz`` archives of plain arrays with a JSON header, never pickle.

This module knows file formats, not models: it imports nothing of rnnlab but the version,
so every other module may use it. :mod:`rnnlab.saving` turns models into records and back.

A *model record* holds one array per parameter (``param/<name>``) and ``meta``: UTF-8 JSON
bytes with the format name, its version, the rnnlab version that wrote it, what kind of
object it is (``network`` or ``layer``) and its configuration. Reading never executes code
(``allow_pickle=False``), and :func:`load_params` checks every name, shape and dtype and
refuses a file that does not match instead of half-loading it. Writing goes to a temporary
file in the same folder that is then renamed over the target, so a crash mid-write leaves
the old file intact.

Model files, checkpoints (:mod:`rnnlab.checkpoint`) and run folders' ``run.json`` all start
with ``{"format": name, "version": n, ...}``; :func:`check_header` is their one check.
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np

from ._version import __version__

FORMAT = "rnnlab-model"
VERSION = 1


class Record(NamedTuple):
    """A model file's content: what it is and its parameters."""

    kind: str  # "network" or "layer"
    config: dict  # the object's ``config``
    arrays: dict  # every array of the file, ``param/<name>`` among them
    meta: dict  # the whole header


# ----------------------------------------------------------------------------------------
# archives


def atomic_write_npz(path, arrays: dict) -> None:
    """Write ``arrays`` as an uncompressed ``.npz`` at ``path``, atomically."""
    atomic_write(path, lambda f: np.savez(f, **arrays))


def atomic_write(path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write`` on a binary file that becomes ``path`` once it returns: the file is
    written in the same folder under a temporary name, synced and renamed over ``path``, so
    a failure (an exception in ``write``, a full disk, an interrupt) leaves whatever was at
    ``path`` as it was and no temporary file."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ValueError(f"cannot write {path}: folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's file is the owner's alone; a model file is not
        os.replace(tmp, path)
    except BaseException:
        # BaseException: an interrupt mid-write must not leave the temporary file behind
        Path(tmp).unlink(missing_ok=True)
        raise


def check_folder(path, name: str = "--out") -> Path:
    """``path`` as a Path if it can be (or already is) a folder: a ValueError of one line when
    it, or a folder it would go in, is an existing file (not a traceback from ``mkdir``)."""
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists() and not p.is_dir():
            where = "is a file" if p == path else f"is inside {p}, which is a file"
            raise ValueError(f"{name} {path} {where}; expected a folder")
    return path


def truncate_log(path, step: int) -> int:
    """Cut a JSON-lines log back to what had been written by update ``step``, for a run that
    resumes from a checkpoint of that step: the lines before the first one that records a
    later ``"step"`` or is not a whole JSON line (a write cut short by a crash). Rewritten
    through a temporary file and a rename; returns the number of lines kept."""
    path = Path(path)
    if not path.is_file():
        return 0
    kept = []
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                break
            later = isinstance(record, dict) and isinstance(record.get("step"), int) \
                and record["step"] > step
            if later or not line.endswith("\n"):
                break
            kept.append(line)
    replace_text(path, "".join(kept))
    return len(kept)


def replace_text(path, text: str) -> None:
    """Write ``text`` at ``path`` through a temporary file and a rename: a write that fails
    (a full disk, an interrupt) leaves the old file as it was and no temporary file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path, record: dict) -> None:
    """Write ``record`` as indented JSON at ``path``, atomically (:func:`replace_text`)."""
    replace_text(path, json.dumps(record, indent=1))


def read_npz(path, what: str = "rnnlab model file") -> dict:
    """Every array of an ``.npz`` file, read without pickle; any failure is a ValueError.

    Each member's header is checked against the bytes the member really holds before any
    array is made (:func:`check_members`), so a file that declares more than it stores is
    refused instead of allocating what it declares.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        check_members(path)
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError, NotImplementedError,
            RuntimeError, OverflowError, struct.error, zlib.error) as e:
        # NotImplementedError: an unknown zip version or compression; RuntimeError: a member
        # flagged as encrypted; struct.error, OverflowError: a corrupt zip directory
        raise ValueError(f"{path} is not a readable {what} ({type(e).__name__}: "
                         f"{shorten(e, 200)})") from None


def check_members(path) -> None:
    """Refuse an ``.npz`` archive whose members could make a reader allocate more than the
    file holds: each must be stored uncompressed (as :func:`atomic_write_npz` writes them)
    and its ``.npy`` header must declare exactly the bytes that follow it. A ValueError
    names the member, what it declares and what it holds; nothing is allocated by size."""
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.compress_type != zipfile.ZIP_STORED:
                raise ValueError(f"member {info.filename} is compressed; rnnlab's files "
                                 f"store their arrays uncompressed")
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(member)
                else:
                    raise ValueError(f"member {info.filename} has .npy format version "
                                     f"{version}; expected 1.0 or 2.0")
                stored = info.file_size - member.tell()
            declared = math.prod(shape) * dtype.itemsize
            if declared != stored:
                raise ValueError(f"member {info.filename} declares shape {shape} of {dtype} "
                                 f"({declared:,} bytes) but holds {stored:,} bytes")


# ----------------------------------------------------------------------------------------
# headers


def meta_array(meta: dict) -> np.ndarray:
    """``meta`` as the uint8 array of its JSON bytes, to store beside the other arrays."""
    return np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)


def read_meta(arrays: dict, path, fmt: str = FORMAT, version: int = VERSION,
              what: str = "rnnlab model file") -> dict:
    """The JSON header ``arrays["meta"]`` of an archive, checked by :func:`check_header`."""
    raw = arrays.get("meta")
    if not isinstance(raw, np.ndarray) or raw.dtype != np.uint8 or raw.ndim != 1:
        raise ValueError(f"{path} is not an {what} (no readable header)")
    meta = loads_json(raw.tobytes(), f"{path} is not an {what} (no readable header)")
    return check_header(meta, path, fmt, version, what)


def loads_json(data: bytes | str, failure: str):
    """``data`` parsed as JSON; ``failure`` (and why) as a ValueError of one line otherwise:
    invalid UTF-8 or JSON, nesting too deep for the parser, a number of too many digits."""
    try:
        return json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
    except RecursionError:
        raise ValueError(f"{failure}: JSON nested too deeply") from None
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, int digits limit
        raise ValueError(f"{failure}: {shorten(e, 120)}") from None


def shorten(value, n: int = 60) -> str:
    """``value``'s text on one line, cut to ``n`` characters: for values read from files,
    which may be anything, in messages that must stay one line."""
    text = " ".join(str(value).split())
    return text if len(text) <= n else text[:n - 3] + "..."


def check_header(meta, path, fmt: str, version: int, what: str) -> dict:
    """``meta`` if it names format ``fmt`` at ``version``; else a ValueError of one line."""
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        got = meta.get("format") if isinstance(meta, dict) else None
        raise ValueError(f"{path} is not an {what} (format {shorten(repr(got))}, "
                         f"expected {fmt!r})")
    if type(meta.get("version")) is not int or meta["version"] != version:
        writer = f" (by rnnlab {shorten(meta['rnnlab'], 30)})" if "rnnlab" in meta else ""
        raise ValueError(f"{path} is an {what} of format version "
                         f"{shorten(repr(meta.get('version')), 30)}{writer}; this rnnlab reads "
                         f"version {version}")
    return meta


def read_run_info(path, fmt: str, version: int, what: str = "run folder") -> dict:
    """The ``run.json`` of a run folder, checked for its format name and version.

    Any failure (no folder, no or corrupt run.json, another format or version) is a
    ValueError of one line.
    """
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{path} is not a run folder (no such directory)")
    info_file = path / "run.json"
    if not info_file.is_file():
        raise ValueError(f"{path} is not a run folder (no run.json)")
    try:
        data = info_file.read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read {info_file} ({shorten(e.strerror, 60)})") from None
    info = loads_json(data, f"{info_file} is corrupt (not JSON)")
    return check_header(info, path, fmt, version, f"rnnlab {what}")


# ----------------------------------------------------------------------------------------
# model records


def write_record(path, kind: str, config: dict, params: dict) -> None:
    """Write a model record (header and ``param/<name>`` arrays) to ``path`` atomically."""
    meta = {"format": FORMAT, "version": VERSION, "rnnlab": __version__, "kind": kind,
            "config": config}
    arrays = {f"param/{k}": v for k, v in params.items()}
    arrays["meta"] = meta_array(meta)
    atomic_write_npz(path, arrays)


def read_record(path) -> Record:
    """The model record at ``path``, its header checked (the parameters are not, yet)."""
    arrays = read_npz(path)
    meta = read_meta(arrays, path)
    return Record(meta.get("kind"), meta.get("config"), arrays, meta)


def load_params(params: dict, arrays: dict, path, prefix: str = "param/") -> None:
    """Check the stored arrays match ``params`` exactly, then copy them in (all or nothing)."""
    check_params(params, arrays, path, prefix)
    for name, v in arrays.items():
        if name.startswith(prefix):
            params[name[len(prefix):]][...] = v


def check_params(params: dict, arrays: dict, path, prefix: str = "param/") -> None:
    """A ValueError of one line unless the arrays named ``prefix<name>`` match ``params``
    exactly: the same names, shapes and dtypes, and no NaN or Inf."""
    stored = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
    missing = sorted(set(params) - set(stored))
    extra = sorted(set(stored) - set(params))
    if missing or extra:
        raise ValueError(f"{path} does not match the model: missing {shorten(missing, 120)}, "
                         f"unexpected {shorten(extra, 120)}")
    for name, v in stored.items():
        want = params[name]
        if v.shape != want.shape or v.dtype != want.dtype:
            raise ValueError(
                f"{path}: parameter {name} has shape {v.shape} {v.dtype}, "
                f"expected {want.shape} {want.dtype}"
            )
        if not np.isfinite(v).all():
            raise ValueError(f"{path}: parameter {name} contains NaN or Inf")
