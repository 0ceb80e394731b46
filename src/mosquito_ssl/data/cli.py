"""``mosquito-ssl data``: generate the synthetic set, inspect a data source, cut presence clips.

    mosquito-ssl data synth data/synth --seed 0
    mosquito-ssl data inspect data/synth
    mosquito-ssl data presence AUDIO_DIR LABELS.txt data/culex_presence/manifest.csv

Thin: each command parses options and calls one library function; heavy imports stay inside.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..options import (
    AudioDirOpt,
    ClipSecondsOpt,
    GroupColumnOpt,
    HopOpt,
    JsonOpt,
    LabelColumnOpt,
    LayoutOpt,
    ProtocolOpts,
    SeedOpt,
    WindowOpt,
)

app = typer.Typer(help="Prepare data: synthetic mosquito tones, layouts, feature caches.", no_args_is_help=True)


@app.command(epilog="Example: mosquito-ssl data synth data/synth --seed 0")
def synth(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write species folders and manifest.csv into.")],
    species: Annotated[
        Optional[list[str]], typer.Option("--species", help="Species to generate (repeatable); default four.")
    ] = None,
    recordings: Annotated[int, typer.Option("--recordings", help="Simulated recordings per species.")] = 6,
    clips: Annotated[int, typer.Option("--clips", help="Clips per recording.")] = 8,
    clip_seconds: ClipSecondsOpt = None,
    snr_db: Annotated[float, typer.Option("--snr-db", help="Flight tone to background ratio in dB.")] = 10.0,
    seed: SeedOpt = None,
) -> None:
    """Generate the synthetic species set."""
    from .synthetic import synthesize

    path = synthesize(
        out_dir,
        species=species or None,
        recordings_per_species=recordings,
        clips_per_recording=clips,
        clip_seconds=1.0 if clip_seconds is None else clip_seconds,
        snr_db=snr_db,
        seed=0 if seed is None else seed,
    )
    n_species = len(species) if species else 4
    typer.echo(
        f"{n_species} species x {recordings} recordings x {clips} clips = {n_species * recordings * clips} clips"
    )
    typer.echo(f"done: {path / 'manifest.csv'}; next: mosquito-ssl data inspect {path}")


@app.command(epilog="Example: mosquito-ssl data inspect data/synth")
def inspect(
    data: Annotated[Path, typer.Argument(help="Folder of audio, manifest CSV or HumBugDB metadata CSV.")],
    layout: LayoutOpt = None,
    window: WindowOpt = None,
    hop: HopOpt = None,
    label_column: LabelColumnOpt = None,
    group_column: GroupColumnOpt = None,
    audio_dir: AudioDirOpt = None,
    clip_seconds: ClipSecondsOpt = None,
    classes: ProtocolOpts.classes = None,
    exclude_classes: ProtocolOpts.exclude_classes = None,
    max_clips_per_group: ProtocolOpts.max_clips_per_group = None,
    min_groups_per_class: ProtocolOpts.min_groups_per_class = None,
    seed: SeedOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Read a data source, build its feature cache and summarise it (what a probe would use)."""
    from .inspection import inspect_data  # torch-free: inspecting data loads no model
    from .protocol import Protocol, class_names

    protocol = Protocol(
        class_names(classes), class_names(exclude_classes), max_clips_per_group, min_groups_per_class, seed or 0
    )
    report = inspect_data(
        data, layout=layout or "auto", window=window, hop=hop, label_column=label_column,
        group_column=group_column, audio_dir=audio_dir, clip_seconds=1.0 if clip_seconds is None else clip_seconds,
        protocol=protocol,
    )  # fmt: skip
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(_format(report))
    typer.echo(f"done: {report['cache']}; next: mosquito-ssl pretrain {data} --preset tiny")


PRESENCE_EXAMPLE = (
    "Example: mosquito-ssl data presence ../shared/data/humbug_ecml_culex "
    "../shared/data/humbug_ecml_culex/culex_quinquefasciatus/labels/data_corrob_all_0or1.txt "
    "data/culex_presence/manifest.csv"
)


def presence(
    audio_dir: Annotated[Path, typer.Argument(help="Folder the metadata CSV's paths are relative to.")],
    labels_txt: Annotated[Path, typer.Argument(help="Label file: one line of 0.1-s 0/1 cells per recording.")],
    out_csv: Annotated[Path, typer.Argument(help="Manifest to write; clips go to its folder's clips/.")],
    window: WindowOpt = None,
    hop: HopOpt = None,
    min_fraction: Annotated[
        float, typer.Option("--min-fraction", help="Mosquito when at least this fraction of cells is 1.")
    ] = 0.5,
    metadata: Annotated[
        Optional[Path], typer.Option("--metadata", help="CSV with path,label_row (default AUDIO_DIR/metadata.csv).")
    ] = None,
) -> None:
    """Cut recordings with 0.1-s presence labels into mosquito/background clips."""
    from .presence import presence_manifest

    path = presence_manifest(
        audio_dir,
        labels_txt,
        out_csv,
        window=window or 1.0,
        hop=hop or window or 1.0,
        min_fraction=min_fraction,
        metadata=metadata,
    )
    typer.echo(f"done: {path}; next: mosquito-ssl probe linear {path.parent} --encoder random:tiny")


app.command("presence", epilog=PRESENCE_EXAMPLE)(presence)


def _format(report: dict) -> str:
    lines = [
        f"source:  {report['source']}",
        f"layout:  {report['layout']}",
        f"clips:   {report['clips']} used ({report['skipped_total']} skipped)",
        f"groups:  {report['groups'] if report['groups'] is not None else 'none'}",
        f"cache:   {report['cache']}",
    ]
    if report["classes"]:
        groups = report.get("groups_per_class") or {}
        lines.append(
            "classes: "
            + ", ".join(f"{c} ({n} clips, {groups.get(c, '?')} groups)" for c, n in report["classes"].items())
        )
        if report.get("left_out"):
            lines.append("left out: " + ", ".join(f"{c} ({n} groups)" for c, n in report["left_out"].items()))
    else:
        lines.append("classes: unlabelled")
    if report["skipped"]:
        lines.append("skipped: " + ", ".join(f"{r} ({n})" for r, n in report["skipped"].items()))
    if report.get("outside_data_folder"):
        lines.append(f"outside: {len(report['outside_data_folder'])} file(s) read from outside the data folder")
    return "\n".join(lines)
