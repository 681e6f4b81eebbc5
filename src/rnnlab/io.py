"""Model files: NumPy ``.npz`` archives of plain arrays and a JSON header, never pickle.

A file holds one array per parameter (``param/<name>``) and ``meta``: UTF-8 JSON bytes with
the format name, its version, the rnnlab version that wrote it, what kind of object it is
(``network`` or ``layer``) and its configuration. Loading never executes code
(``allow_pickle=False``), checks every name, shape and dtype against the configuration, and
refuses a file that does not match instead of half-loading it. Writing goes to a temporary
file in the same folder that is then renamed over the target, so a crash mid-write leaves
the old file intact.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

FORMAT = "rnnlab-model"
VERSION = 1


def atomic_write_npz(path, arrays: dict) -> None:
    """Write ``arrays`` as an uncompressed ``.npz`` at ``path``, atomically."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ValueError(f"cannot write {path}: folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # BaseException: an interrupt mid-write must not leave the temporary file behind
        Path(tmp).unlink(missing_ok=True)
        raise


def _meta_array(meta: dict) -> np.ndarray:
    return np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)


def save(obj, path) -> None:
    """Save a :class:`~rnnlab.Network` or a recurrent layer to ``path``."""
    from . import __version__
    from .cells import RecurrentLayer
    from .network import Network

    if isinstance(obj, Network):
        kind = "network"
    elif isinstance(obj, RecurrentLayer):
        kind = "layer"
    else:
        raise ValueError(f"can save a Network or a recurrent layer, got {type(obj).__name__}")
    meta = {"format": FORMAT, "version": VERSION, "rnnlab": __version__, "kind": kind,
            "config": obj.config}
    arrays = {f"param/{k}": v for k, v in obj.params.items()}
    arrays["meta"] = _meta_array(meta)
    atomic_write_npz(path, arrays)


def read_npz(path, what: str = "rnnlab model file") -> dict:
    """Every array of an ``.npz`` file, read without pickle; any failure is a ValueError."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as e:
        raise ValueError(f"{path} is not a readable {what} ({type(e).__name__}: {e})") from None


def read_meta(arrays: dict, path) -> dict:
    try:
        meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
    except (KeyError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        raise ValueError(f"{path} is not an rnnlab model file (no readable header)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not an rnnlab model file (format {meta.get('format')!r})")
    if meta.get("version") != VERSION:
        raise ValueError(
            f"{path} was written in model format version {meta.get('version')!r} "
            f"(by rnnlab {meta.get('rnnlab')}); this rnnlab reads version {VERSION}"
        )
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
    try:
        info = json.loads(info_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path} is not a run folder (no run.json)") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError(f"{info_file} is corrupt (not JSON)") from None
    if not isinstance(info, dict) or info.get("format") != fmt:
        raise ValueError(f"{path} is not an rnnlab {what} (run.json format is not {fmt!r})")
    if info.get("version") != version:
        raise ValueError(f"{path} is a {what} of format version {info.get('version')!r} "
                         f"(rnnlab {info.get('rnnlab')}); this rnnlab reads version {version}")
    return info


def load(path):
    """Load a model file written by :func:`save`: a :class:`~rnnlab.Network` or a layer."""
    from .cells import layer_from_config
    from .network import Network

    arrays = read_npz(path)
    meta = read_meta(arrays, path)
    config = meta.get("config")
    try:
        if meta.get("kind") == "network":
            obj = Network(**config, seed=0)
        elif meta.get("kind") == "layer":
            obj = layer_from_config({**config, "seed": 0})
        else:
            raise ValueError(f"unknown kind {meta.get('kind')!r}")
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path} has an invalid configuration: {e}") from None
    load_params(obj.params, arrays, path)
    return obj


def load_params(params: dict, arrays: dict, path, prefix: str = "param/") -> None:
    """Check the stored arrays match ``params`` exactly, then copy them in (all or nothing)."""
    stored = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
    missing = sorted(set(params) - set(stored))
    extra = sorted(set(stored) - set(params))
    if missing or extra:
        raise ValueError(f"{path} does not match the model: missing {missing}, unexpected {extra}")
    for name, v in stored.items():
        want = params[name]
        if v.shape != want.shape or v.dtype != want.dtype:
            raise ValueError(
                f"{path}: parameter {name} has shape {v.shape} {v.dtype}, "
                f"expected {want.shape} {want.dtype}"
            )
        if not np.isfinite(v).all():
            raise ValueError(f"{path}: parameter {name} contains NaN or Inf")
    for name, v in stored.items():
        params[name][...] = v
