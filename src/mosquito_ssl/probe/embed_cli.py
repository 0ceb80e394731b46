"""``mosquito-ssl embed``: write one embedding vector per clip to a Parquet or npz file.

    mosquito-ssl embed data/synth --encoder runs/pretrain-tiny --out embeddings.parquet
    mosquito-ssl embed recordings/ --encoder random:tiny --layer 1 --pooling mean --out emb.npz
    mosquito-ssl embed data/synth --encoder random:tiny --patch-size 8 --patch-stride 8 --out grid8.npz

Registered on the root app by ``cli.py``: ``app.command("embed", epilog=embed_cli.EPILOG)(embed_cli.embed)``.
Thin: checks ``--out`` (extension, a writable file path) before any work, calls ``export.embed``
(which reads through the probe stage's embedding cache) and ``export.write_embeddings`` (the file,
and ``<out>.skipped.csv``: what was left out), and prints one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..cli_options import declared_help
from ..options import (
    AudioDirOpt,
    GroupColumnOpt,
    HopOpt,
    LabelColumnOpt,
    LayoutOpt,
    WindowOpt,
)
from .config import ProbeConfig

Opt = typer.Option
EPILOG = (
    "Example: mosquito-ssl embed data/synth --encoder runs/pretrain-tiny --out embeddings.parquet\n\n"
    "Example: mosquito-ssl embed recordings/ --encoder random:tiny --layer 1 --pooling mean --out emb.npz"
)


def embed(
    data: Annotated[Path, typer.Argument(help="Clips: audio folder (labels optional), manifest CSV or HumBugDB CSV.")],
    encoder: Annotated[
        str,
        Opt(
            help="Pretrain run dir, its final/, a model.pth, an HF AST folder, random:<preset>, logmel or handcrafted."
        ),
    ],
    out: Annotated[Path, Opt("--out", "-o", help="Output file; its extension picks the format: .parquet or .npz.")],
    layer: Annotated[Optional[int], Opt()] = None,  # help from ProbeConfig's declarations
    pooling: Annotated[Optional[str], Opt()] = None,
    batch_size: Annotated[Optional[int], Opt()] = None,
    label_column: LabelColumnOpt = None,
    group_column: GroupColumnOpt = None,
    audio_dir: AudioDirOpt = None,
    layout: LayoutOpt = None,
    window: WindowOpt = None,
    hop: HopOpt = None,
    sample_rate: Annotated[Optional[int], Opt()] = None,
    num_mel_bins: Annotated[Optional[int], Opt()] = None,
    normalize: Annotated[Optional[str], Opt()] = None,
    patch_size: Annotated[Optional[int], Opt()] = None,
    patch_stride: Annotated[Optional[int], Opt()] = None,
    seed: Annotated[Optional[int], Opt(help="The weights of random:<preset> (each seed its own).")] = None,
) -> None:
    """Export one embedding vector per clip (Parquet or npz, by --out's extension)."""
    from . import export

    export.check_out(out)  # a bad extension or an unwritable --out fails before the encoder loads
    frame = export.embed(
        data,
        encoder,
        layer,
        export.DEFAULT_POOLING if pooling is None else pooling,
        batch_size=export.DEFAULT_BATCH_SIZE if batch_size is None else batch_size,
        layout=layout or "auto",
        label_column=label_column,
        group_column=group_column,
        audio_dir=audio_dir,
        window=window,
        hop=hop,
        sample_rate=sample_rate,
        num_mel_bins=num_mel_bins,
        normalize=normalize,
        patch_size=patch_size,
        patch_stride=patch_stride,
        seed=seed,
    )
    path = export.write_embeddings(frame, out)
    typer.echo(export.describe(frame, path))


declared_help(embed, ProbeConfig)
