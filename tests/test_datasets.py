"""Tests of circuitep.datasets: built-in sets, IDX parsing, checksums, downloads, real MNIST.

IDX fixtures are written at run time into pytest's tmp_path. The real MNIST files are read only
through the environment variable CIRCUITEP_MNIST_DIR (tests that need it skip when it is unset).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import os
import shutil
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from circuitep import datasets
from circuitep.datasets import (
    DATASETS,
    Dataset,
    DatasetError,
    inputs_to_voltages,
    labels_to_targets,
    load_dataset,
    read_idx,
)

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
ENV_VARS = (
    "CIRCUITEP_MNIST_DIR",
    "CIRCUITEP_FASHION_MNIST_DIR",
    "CIRCUITEP_CACHE",
    "CIRCUITEP_MNIST_URL",
    "CIRCUITEP_FASHION_MNIST_URL",
)


# ---------------------------------------------------------------------------- fixtures, helpers


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode ``array`` (uint8) as an IDX file."""
    assert array.dtype == np.uint8
    magic = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    return magic + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx(path: Path, array: np.ndarray) -> Path:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def fixture_arrays(n_train: int = 12, n_test: int = 5, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10).astype(np.uint8),
    }


def make_idx_dir(directory: Path, gz: bool = True, **arrays: np.ndarray) -> dict[str, np.ndarray]:
    """Write the four IDX fixture files (overridden by ``arrays``, keyed with _ for -)."""
    content = fixture_arrays()
    content.update({key.replace("_", "-"): value for key, value in arrays.items()})
    directory.mkdir(parents=True, exist_ok=True)
    for stem, array in content.items():
        write_idx(directory / (stem + ".gz" if gz else stem), array)
    return content


def trust(monkeypatch, directory: Path, name: str = "mnist") -> None:
    """Take the IDX fixtures in ``directory`` for the published files of ``name``: the module's
    checksum table patched to their SHA-256 (the loader checks every file against it)."""
    table = {}
    for stem in IDX_FILES:
        content = datasets._read_idx_bytes(datasets._find(directory, stem), 1 << 30)
        table[stem] = hashlib.sha256(content).hexdigest()
    key = "MNIST_SHA256" if name == "mnist" else "FASHION_MNIST_SHA256"
    monkeypatch.setattr(datasets, key, table)


@pytest.fixture
def isolated_env(monkeypatch, tmp_path):
    """No circuitep environment variables, and a home directory inside tmp_path."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


@pytest.fixture(scope="session")
def real_mnist_dir() -> Path:
    value = os.environ.get("CIRCUITEP_MNIST_DIR")
    if not value:
        pytest.skip(
            "CIRCUITEP_MNIST_DIR is unset: set it to a directory with the MNIST IDX files "
            "(CI uses shared/data/mnist)"
        )
    return Path(value)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the signature of the base class
        pass


@pytest.fixture
def http_root(tmp_path):
    """A local HTTP server on 127.0.0.1 serving the directory it yields (with its base URL)."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def serve_fixtures(root: Path, monkeypatch) -> dict[str, np.ndarray]:
    """Gzip'd fixtures in ``root``; the module's MNIST checksum table patched to match them."""
    content = make_idx_dir(root)
    table = {stem: hashlib.sha256(idx_bytes(a)).hexdigest() for stem, a in content.items()}
    monkeypatch.setattr(datasets, "MNIST_SHA256", table)
    return content


def assert_matches(ds: Dataset, content: dict[str, np.ndarray]) -> None:
    images = content["train-images-idx3-ubyte"]
    np.testing.assert_array_equal(ds.x_train, images.reshape(len(images), -1) / 255.0)
    np.testing.assert_array_equal(ds.y_train, content["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(ds.y_test, content["t10k-labels-idx1-ubyte"])


# ---------------------------------------------------------------------------- built-in data sets


def test_digits_shapes_ranges_and_stratified_split():
    ds = load_dataset("digits")
    assert (ds.name, ds.n_classes) == ("digits", 10)
    assert ds.x_train.shape == (1437, 64) and ds.x_test.shape == (360, 64)
    assert ds.x_train.dtype == np.float64 and ds.y_train.dtype == np.int64
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0 and ds.x_test.max() <= 1.0
    everything = np.concatenate([ds.y_train, ds.y_test])
    share = np.bincount(everything) / everything.size
    # stratified: each class's share of the test set is within one example of its overall share
    assert np.all(np.abs(np.bincount(ds.y_test, minlength=10) - 360 * share) <= 1.0)
    assert not ds.x_train.flags.writeable


def test_digits_split_deterministic_for_a_seed_and_prefix_subsets():
    a, b = load_dataset("digits", seed=3), load_dataset("digits", seed=3)
    c = load_dataset("digits", seed=4)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.y_train, c.y_train)
    small = load_dataset("digits", seed=3, n_train=100, n_test=20)
    np.testing.assert_array_equal(small.x_train, a.x_train[:100])
    np.testing.assert_array_equal(small.y_test, a.y_test[:20])


def test_xor_points_and_repetition():
    ds = load_dataset("xor")
    np.testing.assert_array_equal(ds.x_train, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(ds.y_train, [0, 1, 1, 0])
    np.testing.assert_array_equal(ds.x_test, ds.x_train)
    long = load_dataset("xor", n_train=10)
    np.testing.assert_array_equal(long.y_train, [0, 1, 1, 0] * 2 + [0, 1])
    assert long.n_classes == 2


def test_blobs_seeded_and_scaled():
    a, b = load_dataset("blobs", seed=5), load_dataset("blobs", seed=5)
    assert a.x_train.shape == (180, 2) and a.x_test.shape == (60, 2) and a.n_classes == 3
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, load_dataset("blobs", seed=6).x_train)
    both = np.concatenate([a.x_train, a.x_test])
    np.testing.assert_array_equal(both.min(axis=0), [0.0, 0.0])
    np.testing.assert_array_equal(both.max(axis=0), [1.0, 1.0])
    np.testing.assert_array_equal(np.bincount(a.y_test), [20, 20, 20])


def test_unknown_name_lists_valid_names():
    with pytest.raises(DatasetError, match="unknown data set 'cifar'") as info:
        load_dataset("cifar")
    for name in DATASETS:
        assert name in str(info.value)


@pytest.mark.parametrize(
    "n_train, message",
    [
        (0, "positive int"),
        (-3, "positive int"),
        (2.5, "positive int"),
        (True, "positive int"),
        (1438, "n_train = 1438 but only 1437"),
    ],
)
def test_bad_n_train(n_train, message):
    with pytest.raises(DatasetError, match=message):
        load_dataset("digits", n_train=n_train)


def test_bad_n_test_and_misplaced_options():
    with pytest.raises(DatasetError, match="digits: n_test = 361 but only 360"):
        load_dataset("digits", n_test=361)
    with pytest.raises(DatasetError, match="blobs: n_test = 61 but only 60"):
        load_dataset("blobs", n_test=61)
    with pytest.raises(DatasetError, match="seed must be a non-negative int"):
        load_dataset("blobs", seed=-1)
    with pytest.raises(DatasetError, match="apply to mnist and fashion-mnist only"):
        load_dataset("digits", download=True)


# ---------------------------------------------------------------------------- Dataset, voltages


def test_a_split_without_samples_is_refused():
    x, y = np.zeros((2, 3)), np.array([0, 1])
    with pytest.raises(DatasetError, match=r"toy: x_test has no samples"):
        Dataset("toy", x, y, np.zeros((0, 3)), np.zeros(0, np.int64), 2)


def test_dataset_validation_names_the_field():
    x, y = np.zeros((3, 2)), np.array([0, 1, 1])
    Dataset("ok", x, y, x, y, 2)
    with pytest.raises(ValueError, match=r"x_test\[1, 0\] = 1.5 is outside \[0, 1\]"):
        Dataset("bad", x, y, np.array([[0.0, 0.0], [1.5, 0.0]]), y[:2], 2)
    with pytest.raises(ValueError, match="x_train must be a 2-D float64 array"):
        Dataset("bad", x.astype(np.float32), y, x, y, 2)
    with pytest.raises(ValueError, match=r"y_train\[2\] = 2 is not a class label in 0..1"):
        Dataset("bad", x, np.array([0, 1, 2]), x, y, 2)
    with pytest.raises(ValueError, match="y_test has 3 labels but x_test has 2 rows"):
        Dataset("bad", x, y, x[:2], y, 2)
    with pytest.raises(ValueError, match="y_train must be a 1-D int64 array"):
        Dataset("bad", x, y.astype(np.int32), x, y, 2)


def test_inputs_to_voltages_affine_and_inverted():
    x = np.array([[0.0, 0.25, 1.0]])
    np.testing.assert_allclose(inputs_to_voltages(x, -0.5, 1.5), [[-0.5, 0.0, 1.5]])
    np.testing.assert_allclose(inputs_to_voltages(x, 1.0, 0.0), [[1.0, 0.75, 0.0]])
    with pytest.raises(DatasetError, match=r"\[0, 1\]"):
        inputs_to_voltages(np.array([1.2]))
    with pytest.raises(DatasetError, match="different"):
        inputs_to_voltages(x, 0.3, 0.3)


def test_labels_to_targets_one_hot():
    t = labels_to_targets(np.array([2, 0]), 3, v_off=-0.1, v_on=0.9)
    np.testing.assert_allclose(t, [[-0.1, -0.1, 0.9], [0.9, -0.1, -0.1]])
    with pytest.raises(DatasetError, match=r"y\[1\] = 3 is not a class label in 0..2"):
        labels_to_targets(np.array([0, 3]), 3)


# ---------------------------------------------------------------------------- read_idx


@pytest.mark.parametrize("name", ["a-idx3-ubyte", "a-idx3-ubyte.gz"])
def test_read_idx_raw_and_gz(tmp_path, name):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    result = read_idx(write_idx(tmp_path / name, array))
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result, array)


def test_read_idx_big_endian_int32(tmp_path):
    values = np.array([1, -2, 70000], dtype=">i4")
    path = tmp_path / "ints-idx1"
    path.write_bytes(struct.pack(">BBBBI", 0, 0, 0x0C, 1, 3) + values.tobytes())
    np.testing.assert_array_equal(read_idx(path), [1, -2, 70000])


def test_read_idx_wrong_magic(tmp_path):
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(b"\x01\x02\x08\x01" + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(DatasetError, match=r"bad-idx1-ubyte: not an IDX file: magic number 010208"):
        read_idx(path)
    path.write_bytes(b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(DatasetError, match="unknown IDX data type code 0x07"):
        read_idx(path)


@pytest.mark.parametrize("name", ["cut-idx3-ubyte", "cut-idx3-ubyte.gz"])
def test_read_idx_truncated(tmp_path, name):
    data = idx_bytes(np.zeros((4, 28, 28), dtype=np.uint8))[:-10]
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    message = rf"{name}: truncated: dimensions \(4, 28, 28\) need 3136 bytes of data, found 3126"
    with pytest.raises(DatasetError, match=message):
        read_idx(path)


def test_read_idx_truncated_gzip_stream_and_missing_file(tmp_path):
    path = tmp_path / "x-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(100, dtype=np.uint8)))[:-12])
    with pytest.raises(DatasetError, match="x-idx1-ubyte.gz: cannot read"):
        read_idx(path)
    with pytest.raises(DatasetError, match="nothing-here: file not found"):
        read_idx(tmp_path / "nothing-here")


# ---------------------------------------------------------------------------- local IDX directories


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_from_data_dir(isolated_env, gz, monkeypatch):
    content = make_idx_dir(isolated_env / "mnist", gz=gz)
    trust(monkeypatch, isolated_env / "mnist")
    ds = load_dataset("mnist", data_dir=isolated_env / "mnist")
    assert ds.x_train.shape == (12, 784) and ds.x_test.shape == (5, 784) and ds.n_classes == 10
    assert_matches(ds, content)
    small = load_dataset("mnist", data_dir=isolated_env / "mnist", n_train=3)
    np.testing.assert_array_equal(small.x_train, ds.x_train[:3])


def test_fashion_mnist_from_env_var_and_system_dir(isolated_env, monkeypatch):
    content = make_idx_dir(isolated_env / "fashion")
    trust(monkeypatch, isolated_env / "fashion", "fashion-mnist")
    monkeypatch.setenv("CIRCUITEP_FASHION_MNIST_DIR", str(isolated_env / "fashion"))
    assert_matches(load_dataset("fashion-mnist"), content)
    monkeypatch.delenv("CIRCUITEP_FASHION_MNIST_DIR")
    monkeypatch.setattr(datasets, "FASHION_MNIST_SYSTEM_DIR", str(isolated_env / "fashion"))
    assert_matches(load_dataset("fashion-mnist", cache_dir=isolated_env / "cache"), content)


def test_label_image_count_mismatch(isolated_env, monkeypatch):
    make_idx_dir(isolated_env, train_labels_idx1_ubyte=np.zeros(11, dtype=np.uint8))
    trust(monkeypatch, isolated_env)
    with pytest.raises(
        DatasetError,
        match=r"mnist: .*train-labels-idx1-ubyte.gz has 11 labels but "
        r".*train-images-idx3-ubyte.gz has 12 images",
    ):
        load_dataset("mnist", data_dir=isolated_env)


def test_label_out_of_range_and_wrong_image_size(isolated_env, monkeypatch):
    labels = np.array([0, 1, 2, 3, 10], dtype=np.uint8)
    make_idx_dir(isolated_env / "a", t10k_labels_idx1_ubyte=labels)
    trust(monkeypatch, isolated_env / "a")
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte.gz: label 10 found; .* 0..9"):
        load_dataset("mnist", data_dir=isolated_env / "a")
    make_idx_dir(isolated_env / "b", t10k_images_idx3_ubyte=np.zeros((5, 8, 8), dtype=np.uint8))
    trust(monkeypatch, isolated_env / "b")
    with pytest.raises(DatasetError, match="expected uint8 images of 28x28 pixels"):
        load_dataset("mnist", data_dir=isolated_env / "b")


def test_a_data_dir_that_is_not_a_directory_says_so(isolated_env, monkeypatch):
    afile = isolated_env / "train-images-idx3-ubyte"
    afile.write_bytes(b"")
    with pytest.raises(
        DatasetError, match=r"given by data_dir \(--data-dir\)\) is not a directory;"
    ):
        load_dataset("mnist", data_dir=afile)
    monkeypatch.setenv("CIRCUITEP_MNIST_DIR", str(isolated_env / "nowhere"))
    with pytest.raises(
        DatasetError,
        match=r"given by \$CIRCUITEP_MNIST_DIR\) is not a directory \(it does not exist\)",
    ):
        load_dataset("mnist")


def test_missing_files_explain_how_to_provide_them(isolated_env):
    make_idx_dir(isolated_env / "partial")
    (isolated_env / "partial" / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DatasetError) as info:
        load_dataset("mnist", data_dir=isolated_env / "partial", download=True)
    message = str(info.value)
    assert "t10k-images-idx3-ubyte[.gz] missing in" in message and "train-images" not in message
    assert "CIRCUITEP_MNIST_DIR" in message and "--data-dir" in message
    with pytest.raises(DatasetError) as info:
        load_dataset("mnist")
    message = str(info.value)
    assert str(isolated_env / "home" / ".cache" / "circuitep" / "mnist") in message
    for expected in (
        "train-images-idx3-ubyte[.gz]",
        "CIRCUITEP_MNIST_DIR",
        "--data-dir",
        "--download",
    ):
        assert expected in message


@pytest.mark.parametrize("listed", ["decompressed", "gz"])
def test_checksum_mismatch_from_sha256sums(isolated_env, listed, monkeypatch):
    content = make_idx_dir(isolated_env)
    trust(monkeypatch, isolated_env)
    sums = {stem: hashlib.sha256(idx_bytes(a)).hexdigest() for stem, a in content.items()}
    if listed == "gz":
        sums = {
            f"{stem}.gz": hashlib.sha256((isolated_env / f"{stem}.gz").read_bytes()).hexdigest()
            for stem in content
        }
    lines = "".join(f"{digest}  {name}\n" for name, digest in sums.items())
    (isolated_env / "SHA256SUMS").write_text(lines)
    assert_matches(load_dataset("mnist", data_dir=isolated_env), content)  # all match
    write_idx(isolated_env / "t10k-labels-idx1-ubyte.gz", np.array([1, 1, 1, 1, 1], dtype=np.uint8))
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte.gz: SHA-256 checksum mismatch"):
        load_dataset("mnist", data_dir=isolated_env)


def test_malformed_sha256sums(isolated_env):
    make_idx_dir(isolated_env)
    (isolated_env / "SHA256SUMS").write_text("abc123  train-images-idx3-ubyte\n")
    with pytest.raises(DatasetError, match=r"SHA256SUMS:1: expected '<sha256 hex>  <filename>'"):
        load_dataset("mnist", data_dir=isolated_env)


# ---------------------------------------------------------------------------- downloads


def test_download_caches_and_loads(isolated_env, http_root, monkeypatch):
    root, url = http_root
    content = serve_fixtures(root, monkeypatch)
    monkeypatch.setenv("CIRCUITEP_MNIST_URL", url)
    cache = isolated_env / "cache"
    assert_matches(load_dataset("mnist", cache_dir=cache, download=True), content)
    names = sorted(p.name for p in (cache / "mnist").iterdir())
    assert names == sorted([f"{stem}.gz" for stem in IDX_FILES] + ["SHA256SUMS"])
    for stem in IDX_FILES:  # served files removed: the second load reads the cache only
        (root / f"{stem}.gz").unlink()
    assert_matches(load_dataset("mnist", cache_dir=cache), content)
    # the SHA256SUMS written beside the cached files catches later corruption
    write_idx(cache / "mnist" / "t10k-labels-idx1-ubyte.gz", np.zeros(5, dtype=np.uint8))
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte.gz: SHA-256 checksum mismatch"):
        load_dataset("mnist", cache_dir=cache)


def test_download_into_cache_from_environment(isolated_env, http_root, monkeypatch):
    root, url = http_root
    content = serve_fixtures(root, monkeypatch)
    monkeypatch.setenv("CIRCUITEP_MNIST_URL", url.rstrip("/"))
    monkeypatch.setenv("CIRCUITEP_CACHE", str(isolated_env / "envcache"))
    assert_matches(load_dataset("mnist", download=True), content)
    assert (isolated_env / "envcache" / "mnist" / "train-images-idx3-ubyte.gz").is_file()


def test_download_rejects_corrupt_file_and_leaves_nothing(isolated_env, http_root, monkeypatch):
    root, url = http_root
    serve_fixtures(root, monkeypatch)
    write_idx(root / "train-labels-idx1-ubyte.gz", np.full(12, 3, dtype=np.uint8))  # not the listed
    monkeypatch.setenv("CIRCUITEP_MNIST_URL", url)
    cache = isolated_env / "cache"
    with pytest.raises(
        DatasetError,
        match=r"train-labels-idx1-ubyte.gz: SHA-256 checksum mismatch "
        r"of the decompressed content .* nothing was saved",
    ):
        load_dataset("mnist", cache_dir=cache, download=True)
    left = sorted(p.name for p in (cache / "mnist").iterdir())
    assert left == ["train-images-idx3-ubyte.gz"]  # fetched and verified before the corrupt one


def test_download_rejects_non_gzip_and_missing_url(isolated_env, http_root, monkeypatch):
    root, url = http_root
    serve_fixtures(root, monkeypatch)
    (root / "train-images-idx3-ubyte.gz").write_bytes(b"<html>not found</html>")
    monkeypatch.setenv("CIRCUITEP_MNIST_URL", url)
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte.gz: not a valid gzip file"):
        load_dataset("mnist", cache_dir=isolated_env / "c1", download=True)
    assert list((isolated_env / "c1" / "mnist").iterdir()) == []
    (root / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match=r"cannot download .*train-images-idx3-ubyte.gz .*404"):
        load_dataset("mnist", cache_dir=isolated_env / "c2", download=True)
    assert list((isolated_env / "c2" / "mnist").iterdir()) == []


# ---------------------------------------------------------------------------- real MNIST


def test_real_mnist_checksum_table_matches_sha256sums(real_mnist_dir):
    lines = (real_mnist_dir / "SHA256SUMS").read_text().splitlines()
    listed = {name: digest for digest, name in (line.split() for line in lines)}
    assert listed == dict(datasets.MNIST_SHA256)


def test_real_mnist_loads_with_checksums(real_mnist_dir, isolated_env):
    ds = load_dataset("mnist", data_dir=real_mnist_dir)
    assert ds.x_train.shape == (60000, 784) and ds.x_test.shape == (10000, 784)
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    np.testing.assert_array_equal(
        np.bincount(ds.y_test), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    )


def test_real_mnist_download_with_the_built_in_checksums(
    real_mnist_dir, isolated_env, http_root, monkeypatch
):
    root, url = http_root
    for stem in IDX_FILES:
        shutil.copy(real_mnist_dir / f"{stem}.gz", root)
    monkeypatch.setenv("CIRCUITEP_MNIST_URL", url)
    ds = load_dataset(
        "mnist", cache_dir=isolated_env / "cache", download=True, n_train=100, n_test=10
    )
    assert ds.x_train.shape == (100, 784) and ds.y_test.shape == (10,)


def test_real_mnist_files_are_not_taken_for_fashion_mnist(real_mnist_dir, isolated_env):
    # Both have the same file names and shapes; only the checksums tell them apart.
    with pytest.raises(
        DatasetError, match=r"is the mnist file 'train-images-idx3-ubyte' .*not fashion-mnist's"
    ):
        load_dataset("fashion-mnist", data_dir=real_mnist_dir)


# ---------------------------------------------------------------------------- integrity, bounds


def modified_mnist(real_mnist_dir: Path, target: Path, stem: str, change) -> Path:
    """The real MNIST files in ``target`` without SHA256SUMS, ``stem`` rewritten (uncompressed)
    with its data bytes passed through ``change``."""
    target.mkdir()
    for other in IDX_FILES:
        if other != stem:
            shutil.copy(real_mnist_dir / f"{other}.gz", target)
    data = datasets._read_idx_bytes(real_mnist_dir / f"{stem}.gz", 1 << 30)
    header = 4 + 4 * data[3]
    array = np.frombuffer(data, np.uint8, offset=header)
    (target / stem).write_bytes(data[:header] + change(array).astype(np.uint8).tobytes())
    return target / stem


@pytest.mark.parametrize(
    "stem, change",
    [
        ("t10k-labels-idx1-ubyte", lambda y: (y + 1) % 10),
        ("train-images-idx3-ubyte", lambda x: 255 - x),
    ],
    ids=["labels-shifted", "pixels-inverted"],
)
def test_modified_mnist_is_refused_unless_not_verified(real_mnist_dir, isolated_env, stem, change):
    path = modified_mnist(real_mnist_dir, isolated_env / "mnist", stem, change)
    message = (
        rf"{path}: SHA-256 checksum mismatch with the published mnist file '{stem}' "
        r".*labels shifted, pixels inverted.*--no-verify"
    )
    with pytest.raises(DatasetError, match=message):
        load_dataset("mnist", data_dir=path.parent)
    with pytest.warns(UserWarning, match=rf"mnist: {path} differ from the published files"):
        ds = load_dataset("mnist", data_dir=path.parent, verify=False, n_train=10, n_test=10)
    assert ds.x_train.shape == (10, 784)


def test_no_verify_from_the_command_line_warns(real_mnist_dir, isolated_env, capsys):
    from circuitep.cli import main

    path = modified_mnist(
        real_mnist_dir, isolated_env / "mnist", "t10k-labels-idx1-ubyte", lambda y: (y + 1) % 10
    )
    argv = [
        "train",
        "ff:784-2-10",
        "--data",
        "mnist",
        "--data-dir",
        str(path.parent),
        "--n-train",
        "20",
        "--n-test",
        "10",
        "--epochs",
        "1",
        "--no-progress",
    ]
    assert main(argv + ["--out", str(isolated_env / "refused")]) == 2
    assert "SHA-256 checksum mismatch with the published mnist file" in capsys.readouterr().err
    assert not (isolated_env / "refused").exists()
    assert main(argv + ["--out", str(isolated_env / "run"), "--no-verify"]) == 0
    err = capsys.readouterr().err
    assert f"circuitep: warning: mnist: {path} differ from the published files" in err, err


def gz_bomb(path: Path, dims: tuple[int, ...], zeros: int) -> Path:
    """A gzip'd IDX header of ``dims`` (uint8), then ``zeros`` zero bytes, written as a stream."""
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(struct.pack(">BBBB", 0, 0, 0x08, len(dims)) + struct.pack(f">{len(dims)}I", *dims))
        block = bytes(1 << 24)
        for _ in range(zeros // len(block)):
            f.write(block)
    return path


def test_a_decompression_bomb_is_refused_after_reading_what_its_header_declares(isolated_env):
    """A .gz of about 1 MB holding 200 MB: the real file's header (47 MB of pixels), then zeros.
    In a child process: refused in well under 2 s, with less than 100 MB beyond the imports."""
    path = gz_bomb(isolated_env / "train-images-idx3-ubyte.gz", (60000, 28, 28), 12 << 24)
    code = f"""
import resource, time
from circuitep.datasets import DatasetError, read_idx
before, start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
try:
    read_idx({str(path)!r})
except DatasetError as exc:
    print(exc)
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""
    root = Path(datasets.__file__).parent.parent
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    message, numbers = done.stdout.splitlines()
    assert message == (
        f"{path}: has trailing bytes: dimensions (60000, 28, 28) need 47040000 "
        "bytes of data, the file holds more"
    ), done.stderr
    seconds, grown_kb = map(float, numbers.split())
    assert seconds < 2 and grown_kb < 100_000, (seconds, grown_kb)


def test_a_header_declaring_more_than_the_published_file_is_refused_unread(
    isolated_env, monkeypatch
):
    make_idx_dir(isolated_env)
    trust(monkeypatch, isolated_env)
    path = gz_bomb(isolated_env / "t10k-labels-idx1-ubyte.gz", (4_000_000_000,), 0)
    message = (
        rf"{path}: IDX header declares dimensions \(4000000000,\), 4,000,000,008 bytes, "
        r"more than the 10,008 of the largest file"
    )
    with pytest.raises(DatasetError, match=message):
        load_dataset("mnist", data_dir=isolated_env)
    with pytest.raises(DatasetError, match=r"more than the 1,073,741,824 of the largest file"):
        read_idx(path)


def test_an_idx_file_without_samples_is_named(isolated_env, monkeypatch):
    make_idx_dir(
        isolated_env,
        t10k_images_idx3_ubyte=np.zeros((0, 28, 28), np.uint8),
        t10k_labels_idx1_ubyte=np.zeros(0, np.uint8),
    )
    trust(monkeypatch, isolated_env)
    message = (
        r"t10k-images-idx3-ubyte.gz: holds no samples \(IDX dimensions \(0, 28, 28\)\); "
        r".*provide the full file"
    )
    with pytest.raises(DatasetError, match=message):
        load_dataset("mnist", data_dir=isolated_env)


def test_a_data_file_that_is_a_fifo_is_refused_at_once(isolated_env):
    os.mkfifo(isolated_env / "x-idx1-ubyte")
    with pytest.raises(DatasetError, match="is a FIFO, not a regular file"):
        read_idx(isolated_env / "x-idx1-ubyte")
