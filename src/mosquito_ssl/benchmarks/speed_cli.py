"""``mosquito-ssl benchmarks speed``: the Typer command around ``benchmarks.speed.run_speed``.

    mosquito-ssl benchmarks speed --preset base --batch 8 --json

Registered on the benchmarks sub-app by ``benchmarks/cli.py``: ``app.command("speed")(speed)``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Optional

import typer

from ..options import JsonOpt


def speed(
    preset: Annotated[str, typer.Option("--preset", help="Encoder preset: tiny, small or base.")] = "base",
    batch: Annotated[int, typer.Option("--batch", help="Training batch size of both pipelines.")] = 8,
    steps: Annotated[int, typer.Option("--steps", help="Timed training steps of this toolkit's pipeline.")] = 8,
    seed_steps: Annotated[
        int,
        typer.Option(
            "--seed-steps", help="Timed steps of the seed-style pipeline (slow: ~30 s each for base, batch 8)."
        ),
    ] = 2,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed warm-up steps before each measurement.")] = 1,
    embed_batch: Annotated[int, typer.Option("--embed-batch", help="Batch size of embedding extraction.")] = 64,
    embed_steps: Annotated[int, typer.Option("--embed-steps", help="Timed embedding batches.")] = 4,
    memory_clips: Annotated[
        int,
        typer.Option(
            "--memory-clips",
            help="Also iterate a feature memmap of N clips (100k = 5.1 GB on disk) and "
            "report resident memory; 0 = skip.",
        ),
    ] = 0,
    peak_size: Annotated[int, typer.Option("--peak-size", help="Matrix size n of the n x n fp32 matmul peak.")] = 4096,
    device: Annotated[Optional[str], typer.Option("--device", help="cpu or cuda (default: cuda if present).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Clips/s of seed-style vs cached-feature training, embedding rate, FLOP rate vs matmul peak. Example: mosquito-ssl benchmarks speed --preset base --batch 8 --json"""
    from .speed import run_speed

    result = run_speed(
        preset=preset,
        batch=batch,
        steps=steps,
        seed_steps=seed_steps,
        warmup=warmup,
        embed_batch=embed_batch,
        embed_steps=embed_steps,
        memory_clips=memory_clips,
        device=device,
        peak_n=peak_size,
    )
    typer.echo(json.dumps(result) if as_json else format_table(result))


def format_table(r: dict[str, Any]) -> str:
    rows = [
        (
            "seed-style training (1024 frames)",
            f"{r['seed_clips_per_s']:.3f} clips/s",
            f"{r['seed_gflops']:.1f} GFLOP/s ({r['seed_fraction_of_peak']:.0%} of peak)",
        ),
        (
            "ours training (100 frames)",
            f"{r['ours_clips_per_s']:.3f} clips/s",
            f"{r['ours_gflops']:.1f} GFLOP/s ({r['ours_fraction_of_peak']:.0%} of peak)",
        ),
        ("speedup", f"{r['speedup']:.1f}x", ""),
        (
            f"embedding extraction (batch {r['embed_batch']})",
            f"{r['embed_clips_per_s']:.2f} clips/s",
            f"{r['embed_gflops']:.1f} GFLOP/s ({r['embed_fraction_of_peak']:.0%} of peak)",
        ),
        ("fp32 matmul peak", f"{r['peak_gflops']:.1f} GFLOP/s", ""),
        ("peak RSS", f"{r['peak_rss_mb']:.0f} MB", ""),
    ]
    if "memory_clips" in r:
        rows.append(
            (
                f"iterate {r['memory_clips']} cached clips ({r['memory_cache_mb']:.0f} MB)",
                f"+{r['memory_anon_growth_mb']:.0f} MB anon",
                f"+{r['memory_file_growth_mb']:.0f} MB file-backed (page cache)",
            )
        )
    head = f"AST-{r['preset']}, batch {r['batch']}, {r['device']}, {r['threads']} threads, torch {r['torch_version']}"
    width = max(len(a) for a, _, _ in rows)
    return "\n".join([head] + [f"  {a:<{width}}  {b:>16}  {c}".rstrip() for a, b, c in rows])
