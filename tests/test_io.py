"""Model files: round trips, atomic writes, and refusal of anything not written by rnnlab."""

import json
import pickle
import zipfile

import numpy as np
import pytest

import rnnlab
from rnnlab import io


@pytest.fixture
def net():
    return rnnlab.Network(3, 5, 4, cell="lstm", num_layers=2, seed=0)


def test_network_round_trip_is_exact(net, tmp_path):
    path = tmp_path / "m.rnnlab"
    net.save(path)
    back = rnnlab.load(path)
    assert back.config == net.config
    for k, v in net.params.items():
        np.testing.assert_array_equal(back.params[k], v)
        assert back.params[k].dtype == v.dtype
    x = np.random.default_rng(0).normal(size=(2, 4, 3))
    np.testing.assert_array_equal(back.predict(x), net.predict(x))


def test_layer_round_trip(tmp_path):
    layer = rnnlab.Elman(3, 4, activation="relu", seed=1, dtype=np.float64)
    rnnlab.save(layer, tmp_path / "e.rnnlab")
    back = rnnlab.load(tmp_path / "e.rnnlab")
    assert isinstance(back, rnnlab.Elman) and back.activation == "relu"
    for k, v in layer.params.items():
        np.testing.assert_array_equal(back.params[k], v)


def test_truncated_file_is_refused_and_not_half_loaded(net, tmp_path):
    path = tmp_path / "m.rnnlab"
    net.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable rnnlab model file"):
        rnnlab.load(path)


def test_garbage_and_pickles_are_refused(tmp_path):
    p = tmp_path / "junk.rnnlab"
    p.write_bytes(b"\x00\x01 not a model")
    with pytest.raises(ValueError, match="not a readable"):
        rnnlab.load(p)
    p.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ValueError, match="not a readable"):
        rnnlab.load(p)
    # an npz holding an object array would need pickle to load: refused
    with open(p, "wb") as f:
        np.savez(f, meta=np.array([{"x": 1}], dtype=object))
    with pytest.raises(ValueError):
        rnnlab.load(p)
    with pytest.raises(ValueError, match="no such file"):
        rnnlab.load(tmp_path / "absent.rnnlab")


def test_other_version_and_shape_mismatch_are_refused(net, tmp_path):
    path = tmp_path / "m.rnnlab"
    net.save(path)
    arrays = io.read_npz(path)
    meta = json.loads(arrays["meta"].tobytes())
    meta["version"] = 99
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(ValueError, match="version 99"):
        rnnlab.load(path)
    meta["version"] = io.VERSION
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    arrays["param/head.W_y"] = np.zeros((5, 3), np.float32)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(ValueError, match=r"head.W_y has shape \(5, 3\)"):
        rnnlab.load(path)


def test_failed_write_keeps_the_old_file(net, tmp_path, monkeypatch):
    path = tmp_path / "m.rnnlab"
    net.save(path)
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        net.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.rnnlab"]  # no temporary left behind
    assert zipfile.is_zipfile(path)


def _rewrite_member(src, dst, name, data=None, compress=zipfile.ZIP_STORED):
    """Copy the archive ``src`` to ``dst``, member ``name`` replaced by ``data`` (bytes) or
    stored with ``compress``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            body = zin.read(info)
            if info.filename == name:
                zout.writestr(info.filename, body if data is None else data,
                              compress_type=compress)
            else:
                zout.writestr(info.filename, body)


def _npy(shape, body: bytes) -> bytes:
    import io as _io

    buf = _io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buf.getvalue() + body


@pytest.mark.parametrize("shape, body", [
    ((10**13,), b"\0" * 8),  # 36 TiB declared: refused before anything is allocated
    ((2, 3), b"\0" * 8),  # a smaller lie
    ((1,), b"\0" * 8),  # more bytes stored than declared
])
def test_a_header_that_does_not_match_its_bytes_is_refused(net, tmp_path, shape, body):
    good, bad = tmp_path / "m.rnnlab", tmp_path / "bad.rnnlab"
    net.save(good)
    _rewrite_member(good, bad, "param/head.W_y.npy", _npy(shape, body))
    declared = f"{int(np.prod(shape)) * 4:,} bytes"
    with pytest.raises(ValueError, match=rf"param/head.W_y.npy declares shape .*{declared}"
                                         rf".* but holds {len(body):,} bytes"):
        rnnlab.load(bad)


def test_a_compressed_member_is_refused(net, tmp_path):
    good, bad = tmp_path / "m.rnnlab", tmp_path / "bad.rnnlab"
    net.save(good)
    _rewrite_member(good, bad, "param/head.b_y.npy", compress=zipfile.ZIP_DEFLATED)
    with pytest.raises(ValueError, match="param/head.b_y.npy is compressed"):
        rnnlab.load(bad)


def test_checkpoints_are_checked_the_same_way(tmp_path):
    net = rnnlab.Network(2, 3, 2, cell="gru", seed=0)
    tr = rnnlab.Trainer(net, batch_size=2)
    ckpt, bad = tmp_path / "c.ckpt", tmp_path / "bad.ckpt"
    tr.save_checkpoint(ckpt)
    _rewrite_member(ckpt, bad, "param/head.W_y.npy", _npy((10**12,), b""))
    with pytest.raises(ValueError, match="declares shape"):
        tr.load_checkpoint(bad)


def test_model_files_are_readable_by_others_like_any_written_file(net, tmp_path):
    net.save(tmp_path / "m.rnnlab")
    assert (tmp_path / "m.rnnlab").stat().st_mode & 0o777 == 0o644
