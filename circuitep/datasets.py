"""Data sets for training circuits, and the maps from data to voltages (DESIGN.md section 5).

:func:`load_dataset` returns a :class:`Dataset` (features in [0, 1], int64 labels);
:func:`inputs_to_voltages` and :func:`labels_to_targets` give the input and target source voltages.

MNIST and Fashion-MNIST come from the four standard IDX files, plain or gzip'd, looked for in:

1. ``data_dir``, else ``$CIRCUITEP_MNIST_DIR`` / ``$CIRCUITEP_FASHION_MNIST_DIR``: if given, the
   only place searched (a wrong path is an error, not a silent fallback);
2. else, for Fashion-MNIST, :data:`FASHION_MNIST_SYSTEM_DIR` (Debian's dataset-fashion-mnist);
3. else the cache ``<root>/<name>``, root = ``cache_dir``, else ``$CIRCUITEP_CACHE``, else
   ``~/.cache/circuitep``. With ``download=True`` the missing files are fetched into it from
   :data:`MNIST_URL` / :data:`FASHION_MNIST_URL` (or ``$CIRCUITEP_MNIST_URL`` /
   ``$CIRCUITEP_FASHION_MNIST_URL``), checked against :data:`MNIST_SHA256` /
   :data:`FASHION_MNIST_SHA256` and moved in atomically; a ``SHA256SUMS`` is written beside them.

Every file must be the published one: the SHA-256 of its decompressed content is checked against
:data:`MNIST_SHA256` / :data:`FASHION_MNIST_SHA256` (``verify=False``, ``--no-verify``, uses other
files with a warning). Each is read no further than its header declares, and a header declaring more
than the published file holds (:data:`IDX_SHAPES`) is refused before the data are read. Any
``SHA256SUMS`` beside the files (``<hex>  <filename>`` lines, as ``sha256sum`` writes) is also
checked before use. A name without ``.gz``, as in shared/data/mnist, is the hash of the decompressed
content and matches ``name`` or ``name.gz``; a name ending in ``.gz`` is the hash of the .gz bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import math
import os
import struct
import tempfile
import urllib.request
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from circuitep.checks import is_integer
from circuitep.fileio import FileReadError, open_regular, read_text_limited

#: Names accepted by :func:`load_dataset`.
DATASETS: tuple[str, ...] = ("digits", "mnist", "fashion-mnist", "xor", "blobs")

#: Base URLs the IDX files are downloaded from (``<url>/<file>.gz``).
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
#: Where Debian's dataset-fashion-mnist package installs the IDX files.
FASHION_MNIST_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist/"

#: SHA-256 of the decompressed MNIST files (from shared/data/mnist/SHA256SUMS).
MNIST_SHA256 = MappingProxyType(
    {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",  # noqa: E501 - a whole digest
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",  # noqa: E501 - a whole digest
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",  # noqa: E501 - a whole digest
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",  # noqa: E501 - a whole digest
    }
)
#: SHA-256 of the decompressed Fashion-MNIST files. Zalando publishes only MD5s of the .gz files;
#: these values agree across several independent public projects that derived them from archives
#: matching those MD5s. No copy of the data was available to check them here.
FASHION_MNIST_SHA256 = MappingProxyType(
    {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",  # noqa: E501 - a whole digest
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",  # noqa: E501 - a whole digest
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",  # noqa: E501 - a whole digest
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",  # noqa: E501 - a whole digest
    }
)
#: Dimensions of the published files, MNIST and Fashion-MNIST alike: a file may hold fewer samples
#: (only with ``verify=False``), never more.
IDX_SHAPES = MappingProxyType(
    {
        "train-images-idx3-ubyte": (60000, 28, 28),
        "train-labels-idx1-ubyte": (60000,),
        "t10k-images-idx3-ubyte": (10000, 28, 28),
        "t10k-labels-idx1-ubyte": (10000,),
    }
)
#: Largest IDX file :func:`read_idx` reads by default (bytes).
MAX_IDX_BYTES = 1 << 30
_IDX_FILES = tuple(IDX_SHAPES)
_ENV = {"mnist": "CIRCUITEP_MNIST", "fashion-mnist": "CIRCUITEP_FASHION_MNIST"}
# IDX data type codes (third byte of the magic number); multi-byte values are big-endian.
_IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DatasetError(ValueError):
    """Unknown, missing, malformed or corrupt data; the message names the problem and the fix."""


def _describe(a: object) -> str:
    return f"{a.dtype} array of shape {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__


def _check_labels(y: np.ndarray, n_classes: int, what: str) -> None:
    bad = (y < 0) | (y >= n_classes)
    if bad.any():
        i = int(np.argmax(bad))
        raise DatasetError(f"{what}[{i}] = {int(y[i])} is not a class label in 0..{n_classes - 1}")


@dataclass(frozen=True, eq=False)
class Dataset:
    """A classification data set split into train and test; the arrays are stored read-only.

    Attributes
    ----------
    name : str
    x_train, x_test : float64 array, (n_train, n_features) and (n_test, n_features), in [0, 1]
    y_train, y_test : int64 array, (n_train,) and (n_test,), values in 0 .. n_classes - 1
    n_classes : int, at least 2
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise DatasetError(f"Dataset.name must be a non-empty str, got {self.name!r}")
        if not is_integer(self.n_classes) or self.n_classes < 2:
            raise DatasetError(
                f"{self.name}: n_classes must be an int >= 2, got {self.n_classes!r}"
            )
        for split in ("train", "test"):
            xf, yf = f"{self.name}: x_{split}", f"{self.name}: y_{split}"
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if not isinstance(x, np.ndarray) or x.dtype != np.float64 or x.ndim != 2:
                raise DatasetError(f"{xf} must be a 2-D float64 array, got {_describe(x)}")
            if x.shape[0] == 0:
                raise DatasetError(
                    f"{xf} has no samples: training and testing need at least one each"
                )
            bad = ~((x >= 0.0) & (x <= 1.0))  # also catches NaN
            if bad.any():
                index = [int(i) for i in np.argwhere(bad)[0]]
                raise DatasetError(f"{xf}{index} = {float(x[tuple(index)])} is outside [0, 1]")
            if not isinstance(y, np.ndarray) or y.dtype != np.int64 or y.ndim != 1:
                raise DatasetError(f"{yf} must be a 1-D int64 array, got {_describe(y)}")
            if y.shape[0] != x.shape[0]:
                raise DatasetError(
                    f"{yf} has {y.shape[0]} labels but x_{split} has {x.shape[0]} rows"
                )
            _check_labels(y, self.n_classes, yf)
            for field, value in ((f"x_{split}", x), (f"y_{split}", y)):
                view = value.view()
                view.flags.writeable = False
                object.__setattr__(self, field, view)
        if self.x_train.shape[1] != self.x_test.shape[1]:
            raise DatasetError(
                f"{self.name}: x_train has {self.x_train.shape[1]} features but "
                f"x_test has {self.x_test.shape[1]}"
            )


def inputs_to_voltages(x: np.ndarray, v_low: float = 0.0, v_high: float = 1.0) -> np.ndarray:
    """Input-source voltages for features in [0, 1]: ``V = v_low + (v_high - v_low) x``.

    Feature 0 maps to ``v_low`` and 1 to ``v_high``; ``v_high < v_low`` gives the inverted copy used
    for signed weights in resistive networks (DESIGN.md section 2).

    Parameters
    ----------
    x : ndarray, shape (...)
        Features in [0, 1] (any shape).
    v_low, v_high : float
        Voltages (V) of features 0 and 1; finite and different.

    Returns
    -------
    ndarray, float64, shape of ``x``
        Input voltages in V.

    Raises
    ------
    DatasetError
        When ``v_low``/``v_high`` are not finite or equal, or a feature is outside [0, 1] or NaN.
    """
    x = np.asarray(x, dtype=np.float64)
    if not (math.isfinite(v_low) and math.isfinite(v_high)) or v_low == v_high:
        raise DatasetError(f"v_low and v_high must be finite and different, got {v_low}, {v_high}")
    if not ((x >= 0.0) & (x <= 1.0)).all():
        raise DatasetError("inputs_to_voltages: features must lie in [0, 1] (and not be NaN)")
    return v_low + (v_high - v_low) * x


def labels_to_targets(
    y: np.ndarray, n_classes: int, v_off: float = 0.0, v_on: float = 1.0
) -> np.ndarray:
    """One-hot target voltages: ``T[i, k] = v_on if y[i] == k else v_off``.

    Parameters
    ----------
    y : ndarray of int, shape (n,)
        Class labels in 0 .. n_classes - 1.
    n_classes : int
        Number of classes, at least 2.
    v_off, v_on : float
        Target voltages (V) of the other classes and of the labelled class.

    Returns
    -------
    ndarray, float64, shape (n, n_classes)
        Target voltages in V.

    Raises
    ------
    DatasetError
        When ``y`` is not a 1-D integer array, ``n_classes`` is not an integer >= 2, or a label is
        out of range (the message names the first bad index).
    """
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(f"labels_to_targets: y must be a 1-D int array, got {_describe(y)}")
    if not is_integer(n_classes) or n_classes < 2:
        raise DatasetError(f"labels_to_targets: n_classes must be an int >= 2, got {n_classes!r}")
    _check_labels(y, int(n_classes), "labels_to_targets: y")
    targets = np.full((y.shape[0], int(n_classes)), float(v_off))
    targets[np.arange(y.shape[0]), y] = float(v_on)
    return targets


def _idx_header(data: bytes, path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """Dimensions, data type and header length (bytes) from the start of an IDX file."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DatasetError(
            f"{path}: not an IDX file: magic number {data[:4].hex() or '(empty)'} "
            "does not start with two zero bytes"
        )
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        raise DatasetError(f"{path}: unknown IDX data type code 0x{code:02X}")
    if ndim == 0:
        raise DatasetError(f"{path}: IDX header declares zero dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{path}: truncated: header of {header} bytes, file has {len(data)}")
    return struct.unpack(f">{ndim}I", data[4:header]), np.dtype(_IDX_DTYPES[code]), header


def _read_idx_bytes(path: Path, limit: int, gz: bool | None = None) -> bytes:
    """The content of an IDX file, read no further than its header declares plus one byte.

    Decompressed if ``gz`` (default: if its name ends in ``.gz``). A header declaring more than
    ``limit`` bytes is refused before the data are read, and a stream longer than its header says (a
    decompression bomb) is never read to its end.
    """
    gz = path.name.endswith(".gz") if gz is None else gz
    try:
        with open_regular(path, "data file") as raw, gzip.GzipFile(fileobj=raw) if gz else raw as f:
            head = f.read(4)
            head += f.read(4 * head[3]) if len(head) == 4 else b""
            dims, dtype, header = _idx_header(head, path)
            size = header + math.prod(dims) * dtype.itemsize
            if size > limit:
                raise DatasetError(
                    f"{path}: IDX header declares dimensions {dims}, {size:,} "
                    f"bytes, more than the {limit:,} of the largest file accepted "
                    "here; delete it and provide it again"
                )
            return head + f.read(size - header + 1)
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: file not found") from exc
    except FileReadError as exc:
        raise DatasetError(str(exc)) from exc
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path}: cannot read ({exc}); delete it and provide it again") from exc


def _parse_idx(data: bytes, path: Path) -> np.ndarray:
    dims, dtype, header = _idx_header(data, path)
    count = math.prod(dims)
    expected, found = count * dtype.itemsize, len(data) - header
    if found < expected:
        raise DatasetError(
            f"{path}: truncated: dimensions {dims} need {expected} bytes of data, found {found}"
        )
    if found > expected:
        raise DatasetError(
            f"{path}: has trailing bytes: dimensions {dims} need {expected} bytes "
            "of data, the file holds more"
        )
    array = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike, max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format), gzip'd if the name ends in ``.gz``.

    The header is a magic number (two zero bytes, a data type code, the number of dimensions)
    followed by each dimension as a big-endian uint32; the data follow in C order.

    Parameters
    ----------
    path : str or os.PathLike
        The IDX file, a regular file.
    max_bytes : int
        Largest (decompressed) size accepted, in bytes; checked against the header before the data
        are read, which are read no further than the header says.

    Returns
    -------
    ndarray
        An array of the header's dimensions and data type, in native byte order.

    Raises
    ------
    DatasetError
        Naming the file, for a missing file, a bad magic number, an unknown type code, a data
        length that does not match, or a header declaring more than ``max_bytes`` bytes
        (default :data:`MAX_IDX_BYTES`).
    """
    path = Path(path)
    return _parse_idx(_read_idx_bytes(path, max_bytes), path)


def _sha256sums(directory: Path) -> dict[str, str]:
    """``{filename: hex digest}`` from ``directory/SHA256SUMS``; empty if there is none."""
    sums = directory / "SHA256SUMS"
    if not sums.is_file():
        return {}
    table = {}
    lines = read_text_limited(sums, 1 << 20, "checksum file").splitlines()
    for number, line in enumerate(lines, start=1):
        if line.strip():
            digest, _, name = line.strip().partition(" ")
            name = name.strip().lstrip("*")
            if len(digest) != 64 or not name:
                raise DatasetError(
                    f"{sums}:{number}: expected '<sha256 hex>  <filename>', got {line!r}"
                )
            table[name] = digest.lower()
    return table


def _find(directory: Path, stem: str) -> Path | None:
    return next((p for p in (directory / stem, directory / f"{stem}.gz") if p.is_file()), None)


def _idx_size(stem: str) -> int:
    """Bytes of the published (decompressed) file ``stem``: header and uint8 data."""
    shape = IDX_SHAPES[stem]
    return 4 + 4 * len(shape) + math.prod(shape)


def _load_verified(
    path: Path, stem: str, sums: dict[str, str], name: str, verify: bool
) -> tuple[np.ndarray, bool]:
    """The array of ``path`` and whether it is the published file ``stem`` of ``name``.

    Published: its SHA-256 is in :data:`MNIST_SHA256` / :data:`FASHION_MNIST_SHA256`; a file that is
    not is refused unless ``verify`` is False. A SHA256SUMS beside it is checked in any case.
    """
    data = _read_idx_bytes(path, _idx_size(stem))
    array = _parse_idx(data, path)  # first: a length that does not match says more than a checksum
    digest = hashlib.sha256(data).hexdigest()
    other, known = (
        ("fashion-mnist", FASHION_MNIST_SHA256) if name == "mnist" else ("mnist", MNIST_SHA256)
    )
    if digest == known[stem]:  # same shapes: nothing else would tell them apart
        raise DatasetError(
            f"{path} is the {other} file {stem!r} (its SHA-256 matches), not {name}'s; "
            f"point the {name} data directory at {name}'s files"
        )
    checks = [(stem, digest)] if stem in sums else []
    if path.name != stem and path.name in sums:
        with open_regular(path, "data file") as f:
            checks.append((path.name, hashlib.file_digest(f, "sha256").hexdigest()))
    for listed, found in checks:
        if found != sums[listed]:
            raise DatasetError(
                f"{path}: SHA-256 checksum mismatch with {listed!r} in "
                f"{path.parent / 'SHA256SUMS'}; the file is corrupt or a different "
                "version: delete it and provide it again"
            )
    published = digest == known_digest(name, stem)
    if verify and not published:
        raise DatasetError(
            f"{path}: SHA-256 checksum mismatch with the published {name} file "
            f"{stem!r} (sha256 {digest[:12]}..., expected "
            f"{known_digest(name, stem)[:12]}...): the file is corrupt, modified or "
            "a different version (labels shifted, pixels inverted, a subset); "
            "delete it and provide it again, or pass verify=False (--no-verify) to "
            "use it anyway"
        )
    return array, published


def known_digest(name: str, stem: str) -> str:
    """The SHA-256 of a published (decompressed) IDX file.

    Parameters
    ----------
    name : {"mnist", "fashion-mnist"}
        The data set.
    stem : str
        The file's name without ``.gz``, a key of :data:`IDX_SHAPES`
        (``train-images-idx3-ubyte``, ...).

    Returns
    -------
    str
        64 hex digits, from :data:`MNIST_SHA256` or :data:`FASHION_MNIST_SHA256`.
    """
    return (MNIST_SHA256 if name == "mnist" else FASHION_MNIST_SHA256)[stem]


def _download(url: str, target: Path, expected: str, size: int) -> None:
    """Fetch the gzip'd ``url`` to ``target`` via a temporary file and ``os.replace``.

    The SHA-256 of its decompressed content, which is ``size`` bytes, is checked first (more is
    refused as soon as it is seen, compressed or decompressed). Nothing is left behind when a step
    fails.
    """
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
                received = 0
                while chunk := response.read(1 << 20):
                    received += len(chunk)
                    if received > size + (1 << 20):  # gzip adds far less to a file of this size
                        raise DatasetError(
                            f"{url}: the server sends more than "
                            f"{size + (1 << 20):,} bytes for a file of {size:,}; "
                            "nothing was saved"
                        )
                    out.write(chunk)
        except (OSError, http.client.HTTPException) as exc:  # URLError is an OSError
            raise DatasetError(
                f"cannot download {url} ({exc}); check the address and the "
                "network, or provide the files yourself"
            ) from exc
        try:
            digest = hashlib.sha256(_read_idx_bytes(Path(tmp), size, gz=True)).hexdigest()
        except DatasetError as exc:
            why = f"not a valid gzip file ({exc.__cause__})" if exc.__cause__ else str(exc)
            raise DatasetError(f"{url}: {why}; nothing was saved") from exc
        if digest != expected:
            raise DatasetError(
                f"{url}: SHA-256 checksum mismatch of the decompressed content "
                f"(got {digest}, expected {expected}); nothing was saved"
            )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _idx_directory(
    name: str,
    data_dir: str | os.PathLike | None,
    download: bool,
    cache_dir: str | os.PathLike | None,
) -> Path:
    """The directory holding the four IDX files of ``name``, downloading them if asked."""
    prefix = _ENV[name]
    explicit = data_dir if data_dir is not None else os.environ.get(f"{prefix}_DIR") or None
    root = cache_dir if cache_dir is not None else os.environ.get("CIRCUITEP_CACHE")
    cache = Path(root or "~/.cache/circuitep").expanduser() / name
    if explicit is not None:
        candidates = [Path(explicit).expanduser()]
        if not candidates[0].is_dir():
            how = "data_dir (--data-dir)" if data_dir is not None else f"${prefix}_DIR"
            raise DatasetError(
                f"{name}: {candidates[0]} (given by {how}) is not a directory"
                f"{'' if candidates[0].exists() else ' (it does not exist)'}; point it at the "
                "directory holding the four IDX files"
            )
    else:
        system = Path(FASHION_MNIST_SYSTEM_DIR)
        use_system = name == "fashion-mnist" and system.is_dir()
        candidates = [system] * use_system + [cache]
    for directory in candidates:
        missing = [stem for stem in _IDX_FILES if _find(directory, stem) is None]
        if not missing:
            return directory
    listed = ", ".join(f"{stem}[.gz]" for stem in missing)
    if explicit is not None:
        how = "data_dir" if data_dir is not None else f"${prefix}_DIR"
        raise DatasetError(
            f"{name}: {listed} missing in {directory} (given by {how}). Put the IDX "
            f"files there or point data_dir (--data-dir) / {prefix}_DIR at the "
            f"directory holding them; to download them into the cache ({cache}) "
            "instead, give neither and pass download=True (--download)"
        )
    if not download:
        raise DatasetError(
            f"{name}: {listed} missing in {' and in '.join(map(str, candidates))}. "
            f"Set {prefix}_DIR or pass data_dir (--data-dir) to a directory holding "
            "them, or pass download=True (--download) to fetch them into "
            f"{directory}"
        )
    directory.mkdir(parents=True, exist_ok=True)
    base = os.environ.get(f"{prefix}_URL") or (MNIST_URL if name == "mnist" else FASHION_MNIST_URL)
    table = MNIST_SHA256 if name == "mnist" else FASHION_MNIST_SHA256
    for stem in missing:
        _download(
            f"{base.rstrip('/')}/{stem}.gz", directory / f"{stem}.gz", table[stem], _idx_size(stem)
        )
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".SHA256SUMS.", suffix=".part")
    with os.fdopen(fd, "w") as out:
        out.writelines(f"{table[stem]}  {stem}\n" for stem in _IDX_FILES)
    os.replace(tmp, directory / "SHA256SUMS")  # later loads re-check the cached files
    return directory


def _load_idx(
    name: str,
    data_dir: str | os.PathLike | None,
    download: bool,
    cache_dir: str | os.PathLike | None,
    verify: bool,
) -> tuple:
    """Raw uint8 images ``(n, 784)`` and labels of both splits, checked against each other."""
    directory = _idx_directory(name, data_dir, download, cache_dir)
    sums = _sha256sums(directory)
    paths = {stem: _find(directory, stem) for stem in _IDX_FILES}
    loaded = {stem: _load_verified(path, stem, sums, name, verify) for stem, path in paths.items()}
    arrays = {stem: array for stem, (array, _) in loaded.items()}
    unverified = [str(paths[stem]) for stem, (_, published) in loaded.items() if not published]
    if unverified:
        warnings.warn(
            f"{name}: {', '.join(unverified)} differ from the published files (SHA-256); "
            "used anyway because verification is off (verify=False, --no-verify)",
            stacklevel=3,
        )
    splits = []
    for split in ("train", "t10k"):
        images_stem, labels_stem = f"{split}-images-idx3-ubyte", f"{split}-labels-idx1-ubyte"
        images_path, labels_path = paths[images_stem], paths[labels_stem]
        images, labels = arrays[images_stem], arrays[labels_stem]
        for path, array in ((images_path, images), (labels_path, labels)):
            if array.size == 0:
                raise DatasetError(
                    f"{path}: holds no samples (IDX dimensions {array.shape}); "
                    "training and testing need at least one each: provide the full "
                    "file"
                )
        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
            raise DatasetError(
                f"{images_path}: expected uint8 images of 28x28 pixels, got {_describe(images)}"
            )
        if labels.dtype != np.uint8 or labels.ndim != 1:
            raise DatasetError(
                f"{labels_path}: expected a 1-D uint8 label array, got {_describe(labels)}"
            )
        if labels.shape[0] != images.shape[0]:
            raise DatasetError(
                f"{name}: {labels_path} has {labels.shape[0]} labels but "
                f"{images_path} has {images.shape[0]} images"
            )
        if labels.size and labels.max() >= 10:
            raise DatasetError(f"{labels_path}: label {labels.max()} found; labels must be 0..9")
        splits += [images.reshape(images.shape[0], -1), labels]
    return (*splits, 10, 255.0)


def _digits(seed: int) -> tuple:
    """scikit-learn's 8x8 digits (values 0..16), stratified split: 1,437 train / 360 test."""
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data, digits.target, test_size=360, stratify=digits.target, random_state=seed
    )
    return x_train, y_train, x_test, y_test, 10, 16.0


def _xor(seed: int) -> tuple:
    """The four corners of the unit square, labelled by XOR; train and test are the same points."""
    x = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([0, 1, 1, 0])
    return x, y, x, y, 2, 1.0


def _blobs(seed: int) -> tuple:
    """Three gaussian clusters in 2-D, 80 points each drawn with ``seed``.

    Centres (0.2, 0.2), (0.8, 0.2), (0.5, 0.8), standard deviation 0.1; min-max scaled into [0, 1]
    over all 240 points, stratified split 180 train / 60 test.
    """
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), 80)
    x = np.array([[0.2, 0.2], [0.8, 0.2], [0.5, 0.8]])[y] + 0.1 * rng.standard_normal((240, 2))
    x = (x - x.min(axis=0)) / (x.max(axis=0) - x.min(axis=0))
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=60, stratify=y, random_state=seed
    )
    return x_train, y_train, x_test, y_test, 3, 1.0


_BUILTIN = MappingProxyType({"digits": _digits, "xor": _xor, "blobs": _blobs})


def _select(n: int | None, available: int, what: str, cycle: bool) -> np.ndarray | slice:
    if n is None:
        return slice(None)
    if not is_integer(n) or n < 1:
        raise DatasetError(f"{what} must be a positive int or None, got {n!r}")
    if cycle:
        return np.arange(n) % available
    if n > available:
        raise DatasetError(f"{what} = {n} but only {available} examples are available")
    return slice(int(n))


def load_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    cache_dir: str | os.PathLike | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    verify: bool = True,
) -> Dataset:
    """Load a data set by name (one of :data:`DATASETS`) with features scaled into [0, 1].

    Parameters
    ----------
    name : str
        ``digits`` (8x8 images / 16, 64 features, seed-dependent stratified split 1,437 / 360),
        ``mnist`` and ``fashion-mnist`` (28x28 images / 255, 784 features, the standard
        60,000 / 10,000 split in file order; the seed is not used), ``xor`` (4 points, 2 classes)
        or ``blobs`` (see ``_blobs``: 2 features, 3 classes, 180 / 60).
    data_dir, download, cache_dir
        Where the IDX files of mnist and fashion-mnist are found or downloaded to; see the module
        docstring. Giving them for another data set is an error.
    n_train, n_test : int, optional
        Keep only the first n examples of each split (after the seed's shuffle). For ``xor`` the
        four points repeat cyclically up to n.
    seed : int
        Seed of the digits split and of the blobs sample.
    verify : bool
        mnist and fashion-mnist: refuse IDX files that are not the published ones (SHA-256 of the
        decompressed content against :data:`MNIST_SHA256` / :data:`FASHION_MNIST_SHA256`: a file
        with shifted labels or inverted pixels has the right shapes, and nothing else tells). False
        uses them anyway, with a ``UserWarning`` naming them. Any ``SHA256SUMS`` beside the files is
        checked either way.
    """
    if name not in DATASETS:
        raise DatasetError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}")
    if not is_integer(seed) or seed < 0:
        raise DatasetError(f"seed must be a non-negative int, got {seed!r}")
    if name in _ENV:
        raw = _load_idx(name, data_dir, download, cache_dir, verify)
    elif data_dir is not None or download or cache_dir is not None or not verify:
        raise DatasetError(
            "data_dir, download, cache_dir and verify apply to mnist and "
            f"fashion-mnist only; {name!r} is built in"
        )
    else:
        raw = _BUILTIN[name](int(seed))
    x_train, y_train, x_test, y_test, n_classes, x_max = raw
    arrays = []
    for x, y, n, what in (
        (x_train, y_train, n_train, "n_train"),
        (x_test, y_test, n_test, "n_test"),
    ):
        index = _select(n, y.shape[0], f"{name}: {what}", cycle=name == "xor")
        features = x[index].astype(np.float64)
        features /= x_max
        arrays += [features, y[index].astype(np.int64)]
    return Dataset(name, *arrays, n_classes=n_classes)
