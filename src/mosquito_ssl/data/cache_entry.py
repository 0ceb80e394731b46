"""Cache entries that cannot be poisoned: written under temporary names, verified, then marked DONE.

    mosquito-ssl probe linear data/synth --encoder random:tiny    # fills and checks features + embeddings

The one mechanism of every cache entry: the features and the ``--normalize dataset`` entry
(``feature_cache.py``, ``normalize.py``), the embeddings and the hand-crafted baseline
(``probe/embeddings.py``, ``probe/baselines.py``):

* ``build_entry(folder, verify)``: ``runs.building`` (the folder's lock, DONE last); the body
  writes its arrays under ``tmp_file`` names and renames them; ``verify()`` must then find nothing
  wrong before DONE is written. A body or a check that fails leaves no DONE and, in every case,
  none of this process's temporary files.
* ``array_problem(array, rows)``: what "verified" means: as many rows as clips, every value
  finite, no row all zero (a row no batch wrote: what a non-positive batch size left behind).
  After a build every row is checked, in chunks; on a read (``sample=True``) the whole array
  when it is small, else an even sample of rows, so a cache hit stays cheap.
* ``entry_ok(folder, check, what)``: a DONE entry read back; when its check fails, or its files
  cannot be read, one warning says so and the caller rebuilds it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .. import runs
from ..errors import DataError

log = logging.getLogger(__name__)

WHOLE_CHECK_BYTES = 64 << 20  # a read checks every row of an array up to this size, else a sample
SAMPLE_ROWS = 64
CHUNK_BYTES = 64 << 20  # rows read at once while checking (never a whole large array in RAM)
Check = Callable[[], "str | None"]  # a description of what is wrong with an entry, or None


def tmp_file(folder: Path, name: str) -> Path:
    """The temporary name of ``name`` in ``folder`` for this process (``build_entry`` removes it)."""
    return Path(folder) / f".{name}.{os.getpid()}.tmp"


def _rows_checked(n: int, row_bytes: int, sample: bool) -> np.ndarray:
    if not sample or n * row_bytes <= WHOLE_CHECK_BYTES or n <= SAMPLE_ROWS:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, SAMPLE_ROWS).round().astype(np.int64))  # first and last included


def array_problem(array: np.ndarray, rows: int, sample: bool = False) -> str | None:
    """What is wrong with ``array`` (one row per clip) for ``rows`` clips, or None."""
    if array.ndim < 2 or array.shape[0] != rows:
        return f"shape {tuple(array.shape)} for {rows} clips"
    row_bytes = max(1, int(np.prod(array.shape[1:])) * array.itemsize)
    index = _rows_checked(rows, row_bytes, sample)
    step = max(1, CHUNK_BYTES // row_bytes)
    bad = zero = 0
    for start in range(0, len(index), step):
        picked = index[start : start + step]
        contiguous = picked[-1] - picked[0] + 1 == len(picked)  # a slice reads a memmap sequentially
        block = np.asarray(array[picked[0] : picked[-1] + 1] if contiguous else array[picked])
        flat = block.reshape(len(block), -1)
        bad += int((~np.isfinite(flat).all(axis=1)).sum())
        zero += int((~flat.any(axis=1)).sum())
    checked = "" if len(index) == rows else f" of {len(index)} sampled"
    if bad:
        return f"{bad}{checked} rows hold NaN or inf"
    if zero:
        return f"{zero}{checked} rows are all zero (never written)"
    return None


def arrays_problem(folder: Path, shapes: Mapping[str, tuple[int, ...]], sample: bool = False) -> str | None:
    """``array_problem`` of each ``<name>.npy`` in ``folder`` against its expected shape."""
    for name, shape in shapes.items():
        array = np.load(Path(folder) / f"{name}.npy", mmap_mode="r")
        if tuple(array.shape) != tuple(shape):
            return f"{name}.npy has shape {tuple(array.shape)}, expected {tuple(shape)}"
        problem = array_problem(array, shape[0], sample)
        if problem:
            return f"{name}.npy: {problem}"
    return None


def entry_ok(folder: Path, check: Check, what: str) -> bool:
    """True when the DONE entry ``folder`` passes ``check``; else one warning, and the caller rebuilds."""
    try:
        problem = check()
    except (OSError, EOFError, ValueError, KeyError, TypeError, IndexError) as exc:  # JSONDecodeError: ValueError
        problem = f"unreadable ({exc})"
    if problem is None:
        return True
    log.warning("%s %s failed its check (%s): rebuilding it", what, folder, problem)
    return False


@contextmanager
def build_entry(folder: Path, verify: Check, what: str, clean: bool = True) -> Iterator[Path]:
    """``runs.building(folder, clean)`` (its lock, its DONE last) with ``verify()`` before DONE;
    no temporary file of this process stays, whatever happens.

    ``clean=False`` for an entry that other processes may fill at once (torchrun ranks): each
    writes its own temporary names and renames; only this process's are removed.
    """
    try:
        with runs.building(folder, clean) as path:
            yield path
            problem = verify()
            if problem is not None:  # raised inside building: no DONE, the lock let go
                raise DataError(
                    f"{what} just built in {folder} failed its check ({problem}): nothing was cached; "
                    "check the input (a checkpoint with NaN weights, a batch size below 1) and rerun"
                )
    finally:
        for tmp in Path(folder).glob(f".*.{os.getpid()}.tmp"):
            tmp.unlink(missing_ok=True)
