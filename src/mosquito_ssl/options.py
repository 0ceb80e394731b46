"""CLI options shared by several commands, defined once so every command spells them the same.

Options whose default is ``None`` mean "not given": the stage's dataclass default (or the
TOML file passed with ``--config``) then applies. See ``config.resolve``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .data.feature_settings import FeatureSettings

ConfigOpt = Annotated[
    Optional[Path],
    typer.Option("--config", "-c", help="TOML file with settings; flags given on the command line win."),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Recompute even if a finished result exists.")]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Random seed (splits, init, masks).")]
OutOpt = Annotated[Optional[Path], typer.Option("--out", "-o", help="Output directory.")]
PresetOpt = Annotated[
    Optional[str], typer.Option("--preset", help="Encoder preset built locally: tiny, small or base.")
]
LayoutOpt = Annotated[
    Optional[str],
    typer.Option("--layout", help="Data layout: auto, flat, folders, csv or humbugdb."),
]
ClipSecondsOpt = Annotated[
    Optional[float],
    typer.Option("--clip-seconds", help=f"Clip length in seconds (default {FeatureSettings().clip_seconds:g})."),
]
WindowOpt = Annotated[
    Optional[float],
    typer.Option("--window", help="Cut long recordings into clips of this many seconds."),
]
HopOpt = Annotated[
    Optional[float], typer.Option("--hop", help="Hop between consecutive clips in seconds (default = window).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")]
# The data-source options of every command that reads labelled clips (data inspect, probe *).
LabelColumnOpt = Annotated[
    Optional[str], typer.Option("--label-column", help="Manifest column holding the class (default: label).")
]
GroupColumnOpt = Annotated[
    Optional[str],
    typer.Option(
        "--group-column",
        help="Column grouping clips (recording, site, device; default: group): never split across train/val/test.",
    ),
]
AudioDirOpt = Annotated[
    Optional[Path],
    typer.Option("--audio-dir", help="Folder holding the audio a CSV lists (default: the CSV's folder)."),
]


class ProtocolOpts:
    """The evaluation-protocol options (data/protocol.py) of every command that evaluates clips."""

    classes = Annotated[Optional[str], typer.Option("--classes", help="Comma-separated classes to evaluate (all).")]
    exclude_classes = Annotated[
        Optional[str], typer.Option("--exclude-classes", help="Comma-separated classes to leave out.")
    ]
    max_clips_per_group = Annotated[
        Optional[int], typer.Option("--max-clips-per-group", help="At most N clips per group (seeded choice).")
    ]
    min_groups_per_class = Annotated[
        Optional[int],
        typer.Option("--min-groups-per-class", help="Leave out (and log) classes with fewer than K groups."),
    ]
