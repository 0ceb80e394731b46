"""``embed(data, encoder)``: one embedding vector per clip, exported for use in other tools.

    mosquito-ssl embed data/synth --encoder runs/pretrain-tiny --out embeddings.parquet

Owns the export: the rows (the feature cache's clips: ``path``, ``offset``, ``group``,
``label``) and the vector of one layer and pooling, read through the probe stage's embedding
cache (``run.encoder_embeddings``), so an export after a probe on the same encoder and data, or
a second export, runs no encoder forward pass. Labels are optional: a flat folder of unlabelled
audio exports with ``label`` None. The file format follows the extension of ``--out``:

* ``.parquet``: columns ``path`` (str), ``offset`` (float64, seconds), ``group``, ``label`` (str
  or null), ``vector`` (a fixed-size list of float32 per row); the schema metadata holds
  ``encoder``, ``layer``, ``pooling`` and ``seed`` as strings (``pyarrow.parquet.read_schema(f).metadata``).
* ``.npz``: arrays ``path``, ``group``, ``label`` (str; "" = none), ``offset`` (float64),
  ``vector`` (N, D) float32, and the scalars ``encoder``, ``layer``, ``pooling``, ``seed``.

``layer`` is the hidden layer (0 = embedding output, L = the encoder output); a baseline such
as ``handcrafted`` has no layers: ``layer`` None in the frame, ``-1`` in the files, and
``pooling`` ``none``. ``encoder`` is the ``--encoder`` value, a path made absolute; ``seed``
the ``--seed`` that picked the weights of ``random:<preset>``, ``-1`` for any other encoder.

What the data layer left out (and the files it read from outside the data folder) travels in
``frame.attrs["skipped_files"]`` and is written next to the output as ``<out>.skipped.csv``
(``path,reason,used``, the probe run folder's ``skipped_files.csv``; a header alone when nothing
was left out). ``check_out`` refuses an ``--out`` that cannot be written before any work.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import runs
from ..data.feature_settings import FRONT_END
from ..errors import ConfigError
from .config import BASELINES, PATCH_FIELDS, ProbeConfig

log = logging.getLogger(__name__)

FORMATS = (".parquet", ".npz")
SKIPPED_SUFFIX = ".skipped.csv"  # <out>.skipped.csv: what the export left out
COLUMNS = ("path", "offset", "group", "label", "vector")
# read_dataset's options (what probe.inputs.labelled_dataset passes it), the ``**data_options`` of embed
DATA_OPTIONS = ("layout", "label_column", "group_column", "split_column", "audio_dir", "window", "hop")
# and the front end of random:<preset> and the baselines, and random:<preset>'s patch grid, as the probes take them
OPTIONS = (*DATA_OPTIONS, *FRONT_END, *PATCH_FIELDS)
# ProbeConfig's defaults (declared there once)
DEFAULT_POOLING: str = ProbeConfig.__dataclass_fields__["pooling"].default  # type: ignore[assignment]
DEFAULT_BATCH_SIZE: int = ProbeConfig.__dataclass_fields__["batch_size"].default  # type: ignore[assignment]
NO_LAYER = -1  # the ``layer`` written for a baseline encoder, which has no layers
NO_SEED = -1  # the ``seed`` written for an encoder whose weights no seed picks (all but random:)


def output_format(path: str | Path) -> str:
    """``.parquet`` or ``.npz`` from ``path``'s extension; any other is a ConfigError naming --out."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(
            f"--out {path}: unknown file type {suffix or '(no extension)'!r}; end the name in "
            f"{' or '.join(FORMATS)} (Parquet or numpy npz)"
        )
    return suffix


def check_out(path: str | Path) -> str:
    """``output_format(path)``, and a ConfigError naming --out when it cannot be written: a folder,
    a path under a file, a folder without write permission (checked by writing a temporary file)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ConfigError(f"--out {path} is a folder: give a file name inside it, e.g. {path / 'embeddings.parquet'}")
    kind = output_format(path)
    parent = path.parent
    while not parent.exists():  # write_embeddings creates the missing folders
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"--out {path}: {parent} is a file, not a folder: choose a path in a folder")
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise ConfigError(
            f"--out {path}: cannot write in {parent} ({exc.strerror or exc}): choose a folder you can write to"
        ) from None
    return kind


def embed(
    data: str | Path,
    encoder: str | Path,
    layer: int | None = None,
    pooling: str = DEFAULT_POOLING,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    cache_dir: str | Path | None = None,
    seed: int | None = None,
    **data_options: Any,
) -> pd.DataFrame:
    """One row per clip of ``data``: path, offset, group, label and ``vector`` (1-D float32).

    ``layer`` None is the last; ``frame.attrs`` holds ``encoder``, ``layer`` and ``pooling``.
    ``data_options`` are ``OPTIONS`` (the data-source and front-end flags of the probe commands);
    ``seed`` picks the weights of ``random:<preset>`` (None = 0) and is an error for any other encoder.
    """
    unknown = sorted(set(data_options) - set(OPTIONS))
    if unknown:
        raise TypeError(f"embed() got unknown data options {unknown}: use {', '.join(OPTIONS)}")
    if str(encoder) in BASELINES and layer is not None:
        raise ConfigError(f"--layer does not apply to --encoder {encoder}: a baseline has no layers; drop --layer")
    if seed is not None and not str(encoder).startswith("random:"):
        raise ConfigError(
            f"--seed picks the weights of random:<preset> encoders; --encoder {encoder} has its own: drop --seed"
        )
    cfg = ProbeConfig(
        seed=0 if seed is None else seed,
        data=Path(data),
        encoder=str(encoder),
        pooling=pooling,
        layer=layer,
        batch_size=batch_size,
        cache_dir=None if cache_dir is None else Path(cache_dir),
        **data_options,
    )
    from ..data.manifest import read_dataset  # the settings are checked before torch loads
    from .inputs import features_for, load_encoder_for
    from .run import encoder_embeddings

    model, settings = load_encoder_for(cfg)  # checks --layer against the encoder's depth
    options = {k: getattr(cfg, k) for k in DATA_OPTIONS}
    dataset = read_dataset(cfg.data, clip_seconds=settings.clip_seconds, **options)  # labels optional
    cache = features_for(cfg, dataset, settings)  # the cache probes and pretraining fill
    E, _ = encoder_embeddings(cfg.encoder, model, cache, cfg.pooling, cfg.batch_size, cfg.cache_dir)
    index = E.shape[1] - 1 if layer is None else layer
    frame = clip_frame(cache.items, np.ascontiguousarray(E[:, index, :], dtype=np.float32))
    frame.attrs.update(
        encoder=_encoder_name(cfg.encoder),
        layer=None if model is None else index,
        pooling=cfg.row_pooling,
        seed=cfg.seed if cfg.encoder.startswith("random:") else None,  # which random weights
    )
    summary = cache.summary()
    frame.attrs["skipped_files"] = summary["skipped_files"]
    frame.attrs["outside_data_folder"] = summary["outside_data_folder"]
    return frame


def clip_frame(items: list, vectors: np.ndarray) -> pd.DataFrame:
    """One row per clip (``Item``) with its row of ``vectors`` (N, D) as a 1-D float32 array."""
    return pd.DataFrame(
        {
            "path": [i.path for i in items],
            "offset": np.asarray([float(i.offset or 0.0) for i in items], dtype=np.float64),
            # object columns keep None for "no group / no label" (pandas would turn str + None into NaN)
            "group": pd.Series([i.group for i in items], dtype=object),
            "label": pd.Series([i.label for i in items], dtype=object),
            "vector": list(vectors),  # views of the one (N, D) array
        }
    )


def _encoder_name(encoder: str) -> str:
    """``--encoder`` as written into the files: a checkpoint path made absolute, names as given."""
    if encoder in BASELINES or encoder.startswith("random:"):
        return encoder
    return str(Path(encoder).expanduser().resolve())


def _layer_value(frame: pd.DataFrame) -> int:
    layer = frame.attrs.get("layer")
    return NO_LAYER if layer is None else int(layer)


def _seed_value(frame: pd.DataFrame) -> int:
    seed = frame.attrs.get("seed")
    return NO_SEED if seed is None else int(seed)


def vector_matrix(frame: pd.DataFrame) -> np.ndarray:
    """The ``vector`` column as one (N, D) float32 array."""
    if len(frame) == 0:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack(frame["vector"].to_numpy()).astype(np.float32, copy=False)


def embedding_arrays(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The npz arrays of ``frame``: str columns ("" = none), offset, (N, D) vector, scalars."""

    def text(column: str) -> np.ndarray:
        return np.asarray([_text_or_none(v) or "" for v in frame[column]], dtype=str)

    return {
        "path": text("path"),
        "offset": frame["offset"].to_numpy(dtype=np.float64),
        "group": text("group"),
        "label": text("label"),
        "vector": vector_matrix(frame),
        "encoder": np.asarray(str(frame.attrs.get("encoder", ""))),
        "layer": np.asarray(_layer_value(frame), dtype=np.int64),
        "pooling": np.asarray(str(frame.attrs.get("pooling", ""))),
        "seed": np.asarray(_seed_value(frame), dtype=np.int64),
    }


def embedding_table(frame: pd.DataFrame):
    """``frame`` as a pyarrow Table: fixed-size float32 list vectors, settings in the schema metadata."""
    import pyarrow as pa

    matrix = vector_matrix(frame)
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), matrix.shape[1])
    table = pa.table(
        {
            "path": pa.array(frame["path"].astype(str).tolist(), pa.string()),
            "offset": pa.array(frame["offset"].to_numpy(dtype=np.float64)),
            "group": pa.array([_text_or_none(v) for v in frame["group"]], pa.string()),
            "label": pa.array([_text_or_none(v) for v in frame["label"]], pa.string()),
            "vector": vectors,
        }
    )
    settings = {
        "encoder": str(frame.attrs.get("encoder", "")),
        "layer": str(_layer_value(frame)),
        "pooling": str(frame.attrs.get("pooling", "")),
        "seed": str(_seed_value(frame)),
    }
    return table.replace_schema_metadata({k.encode(): v.encode() for k, v in settings.items()})


def _text_or_none(value: Any) -> str | None:
    return None if value is None or value != value else str(value)  # value != value: NaN


def skipped_path(path: str | Path) -> Path:
    """``<out>.skipped.csv``: the list of what an export left out, next to the export."""
    return Path(path).with_name(Path(path).name + SKIPPED_SUFFIX)


def write_embeddings(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` (from ``embed``) to ``path``, Parquet or npz by its extension, atomically,
    and its ``skipped_files`` to ``<path>.skipped.csv`` (first: the export is the last file written)."""
    from ..data.items import records_csv

    path = Path(path)
    kind = check_out(path)
    skipped, outside = frame.attrs.get("skipped_files", []), frame.attrs.get("outside_data_folder", [])
    runs.write_text_atomic(skipped_path(path), records_csv(skipped, outside))
    if skipped or outside:
        log.info(
            "%d left out, %d outside the data folder: listed in %s", len(skipped), len(outside), skipped_path(path)
        )
    with runs.atomic_file(path) as fh:  # streamed: an export of many clips is large
        if kind == ".parquet":
            import pyarrow.parquet as pq

            pq.write_table(embedding_table(frame), fh)
        else:
            arrays: dict[str, Any] = embedding_arrays(frame)  # Any: numpy's stub types savez's keywords as bool
            np.savez(fh, **arrays)
    return path


def describe(frame: pd.DataFrame, path: str | Path) -> str:
    """The one line ``mosquito-ssl embed`` prints."""
    dims = len(frame["vector"].iloc[0]) if len(frame) else 0
    layer = frame.attrs.get("layer")
    return (
        f"wrote {len(frame)} embeddings ({dims} dims, layer {'none' if layer is None else layer}, "
        f"pooling {frame.attrs.get('pooling')}) to {path}"
    )
