"""``mosquito-ssl data``: generate the synthetic set and inspect a data source.

    mosquito-ssl data synth data/synth --seed 0
    mosquito-ssl data inspect data/synth

Thin: each command parses options and calls one library function; heavy imports stay inside.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..options import ClipSecondsOpt, HopOpt, JsonOpt, LayoutOpt, SeedOpt, WindowOpt

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
        f"{path}: {n_species} species x {recordings} recordings x {clips} clips = {n_species * recordings * clips} clips"
    )


@app.command(epilog="Example: mosquito-ssl data inspect data/synth")
def inspect(
    data: Annotated[Path, typer.Argument(help="Folder of audio, manifest CSV or HumBugDB metadata CSV.")],
    layout: LayoutOpt = None,
    window: WindowOpt = None,
    hop: HopOpt = None,
    label_column: Annotated[Optional[str], typer.Option("--label-column", help="CSV column holding labels.")] = None,
    group_column: Annotated[
        Optional[str], typer.Option("--group-column", help="CSV column grouping clips (recording, site, device).")
    ] = None,
    audio_dir: Annotated[
        Optional[Path], typer.Option("--audio-dir", help="Folder holding the audio a CSV lists.")
    ] = None,
    clip_seconds: ClipSecondsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Read a data source, build its feature cache and summarise it."""
    from .features import inspect_data

    report = inspect_data(
        data, layout=layout or "auto", window=window, hop=hop, label_column=label_column,
        group_column=group_column, audio_dir=audio_dir, clip_seconds=1.0 if clip_seconds is None else clip_seconds,
    )  # fmt: skip
    typer.echo(json.dumps(report, indent=2) if as_json else _format(report))


def _format(report: dict) -> str:
    lines = [
        f"source:  {report['source']}",
        f"layout:  {report['layout']}",
        f"clips:   {report['clips']} used ({report['skipped_total']} skipped)",
        f"groups:  {report['groups'] if report['groups'] is not None else 'none'}",
        f"cache:   {report['cache']}",
    ]
    if report["classes"]:
        lines.append("classes: " + ", ".join(f"{c} ({n})" for c, n in report["classes"].items()))
    else:
        lines.append("classes: unlabelled")
    if report["skipped"]:
        lines.append("skipped: " + ", ".join(f"{r} ({n})" for r, n in report["skipped"].items()))
    return "\n".join(lines)
