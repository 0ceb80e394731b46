"""Mosquito-presence windows from per-0.1-s labels (the HumBug ECML Culex recordings).

    mosquito-ssl data presence ../shared/data/humbug_ecml_culex \\
        ../shared/data/humbug_ecml_culex/culex_quinquefasciatus/labels/data_corrob_all_0or1.txt \\
        data/culex_presence/manifest.csv
    mosquito-ssl probe linear data/culex_presence --encoder runs/pretrain-tiny

Part of the data stage (it writes clips and a manifest); ``mosquito-ssl probe presence`` is a
hidden alias kept for old scripts. Owns ``presence_manifest``: cut every recording into
``window``-second clips every ``hop`` seconds, label a clip ``mosquito`` when at least
``min_fraction`` of its 0.1-s label cells say mosquito and ``background`` when at most
``max_background`` do (clips in between are ambiguous and left out), group clips by recording.
The csv layout of ``data.manifest`` has no ``offset`` column, so the clips are written as WAV
files (native sample rate) next to the manifest (``path,label,group``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from .. import runs
from ..errors import DataError

log = logging.getLogger(__name__)

CELL_SECONDS = 0.1  # one label per 0.1 s


def read_label_rows(labels_txt: Path) -> list[np.ndarray]:
    """One float array per line of a whitespace- or comma-separated 0/1 label file."""
    rows = []
    for line in Path(labels_txt).read_text(encoding="utf-8").splitlines():
        rows.append(np.asarray([float(v) for v in line.replace(",", " ").split()], dtype=np.float32))
    return rows


def _recordings(audio_dir: Path, metadata: Path | None) -> pd.DataFrame:
    """path + label_row per recording. In the ECML release ``label_row`` counts label-file
    lines from 0: the file's first line belongs to no recording (checked against
    ``frac_mosquito_0p1s`` when that column is there)."""
    metadata = Path(metadata) if metadata else audio_dir / "metadata.csv"
    if not metadata.is_file():
        raise DataError(f"{metadata} not found: pass metadata= a CSV with path,label_row columns")
    table = pd.read_csv(metadata)
    missing = {"path", "label_row"} - set(table.columns)
    if missing:
        raise DataError(f"{metadata} lacks column(s) {', '.join(sorted(missing))}; it has {', '.join(table.columns)}")
    return table


def _windows(cells: np.ndarray, duration: float, window: float, hop: float):
    n = int(np.floor((duration - window) / hop + 1e-9)) + 1
    per = round(window / CELL_SECONDS)
    for k in range(max(n, 0)):
        start = round(k * hop / CELL_SECONDS)
        part = cells[start : start + per]
        if len(part) == per:
            yield k * hop, float(part.mean())


def presence_manifest(
    audio_dir,
    labels_txt,
    out_csv,
    window: float = 1.0,
    hop: float = 1.0,
    min_fraction: float = 0.5,
    max_background: float = 0.0,
    metadata: Path | None = None,
) -> Path:
    """Write presence clips + ``out_csv`` (path,label,group); return ``out_csv``."""
    audio_dir, out_csv = Path(audio_dir), Path(out_csv)
    rows, table = read_label_rows(labels_txt), _recordings(audio_dir, metadata)
    clips_dir = out_csv.parent / "clips"
    clips_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for rec in table.itertuples():
        path = audio_dir / rec.path
        info = sf.info(str(path))
        duration = info.frames / info.samplerate
        cells = rows[int(rec.label_row)][: round(duration / CELL_SECONDS)]
        if hasattr(rec, "frac_mosquito_0p1s") and abs(cells.mean() - rec.frac_mosquito_0p1s) > 0.01:
            log.warning(
                "%s: label fraction %.3f differs from metadata %.3f: check label_row",
                path,
                cells.mean(),
                rec.frac_mosquito_0p1s,
            )
        wave, sr = sf.read(str(path), dtype="float32")
        for offset, frac in _windows(cells, duration, window, hop):
            label = "mosquito" if frac >= min_fraction else "background" if frac <= max_background else None
            if label is None:
                continue
            name = f"{path.stem}_{offset:07.2f}.wav"
            start = round(offset * sr)
            sf.write(clips_dir / name, wave[start : start + round(window * sr)], sr, subtype="PCM_16")
            out.append({"path": f"clips/{name}", "label": label, "group": path.stem, "offset": offset})
    frame = pd.DataFrame(out)
    runs.write_text_atomic(out_csv, frame[["path", "label", "group"]].to_csv(index=False))
    log.info("%d clips from %d recordings: %s", len(frame), len(table), frame["label"].value_counts().to_dict())
    return out_csv
