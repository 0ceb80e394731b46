"""``mosquito-ssl benchmarks speed``: the Typer command around ``speed.run.run_speed``.

    mosquito-ssl benchmarks speed --preset base --batch 8 --json

Registered on the benchmarks sub-app by ``benchmarks/cli.py``:
``app.command("speed", epilog=EPILOG)(speed)``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Optional

import typer

from ..errors import ConfigError
from ..options import JsonOpt, PresetOpt

EPILOG = (
    "Example: mosquito-ssl benchmarks speed --preset base --batch 8 --json\n\n"
    "Example: mosquito-ssl benchmarks speed --preset tiny --batch 2 --steps 1 --original-steps 1\n\n"
    "Example: mosquito-ssl benchmarks speed --preset base --batch 8 --equal-memory --json"
)
Opt = typer.Option


def speed(
    preset: PresetOpt = None,
    batch: Annotated[int, Opt("--batch", help="Training batch size of every pipeline.")] = 8,
    steps: Annotated[int, Opt("--steps", help="Timed training steps of each pipeline but the original.")] = 8,
    original_steps: Annotated[
        Optional[int],
        Opt("--original-steps", help="Timed steps of the original pipeline (2; slow: ~30 s each for base, batch 8)."),
    ] = None,
    seed_steps: Annotated[Optional[int], Opt("--seed-steps", hidden=True, help="Old name of --original-steps.")] = None,
    warmup: Annotated[int, Opt("--warmup", help="Untimed warm-up steps before each measurement.")] = 1,
    embed_batch: Annotated[int, Opt("--embed-batch", help="Batch size of embedding extraction.")] = 64,
    embed_steps: Annotated[int, Opt("--embed-steps", help="Timed embedding batches.")] = 4,
    memory_clips: Annotated[
        int,
        Opt(
            "--memory-clips",
            help="Also iterate a feature memmap of N clips (100k = 5.1 GB on disk) and report resident memory; 0 = skip.",
        ),
    ] = 0,
    peak_size: Annotated[int, Opt("--peak-size", help="Matrix size n of the n x n fp32 matmul peak.")] = 4096,
    device: Annotated[Optional[str], Opt("--device", help="cpu or cuda (default: cuda if present).")] = None,
    equal_memory: Annotated[
        bool,
        Opt(
            "--equal-memory",
            help="Also time each method lighter than reconstruct at the batch that fills reconstruct's activation memory.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Training clips/s of each pipeline, embedding rate, and FLOP rates against the matmul peak."""
    from .run import run_speed

    if seed_steps is not None and original_steps is not None:
        raise ConfigError("--seed-steps is the old name of --original-steps: give only --original-steps")
    given = original_steps if original_steps is not None else seed_steps
    result = run_speed(
        preset=preset or "base",
        batch=batch,
        steps=steps,
        original_steps=2 if given is None else given,
        warmup=warmup,
        embed_batch=embed_batch,
        embed_steps=embed_steps,
        memory_clips=memory_clips,
        device=device,
        peak_n=peak_size,
        equal_memory=equal_memory,
    )
    typer.echo(json.dumps(result) if as_json else format_table(result))


def _rate_row(label: str, r: dict[str, Any], name: str) -> tuple[str, str, str]:
    return (
        label,
        f"{r[f'{name}_clips_per_s']:.3f} clips/s",
        f"{r[f'{name}_gflops']:.1f} GFLOP/s ({r[f'{name}_fraction_of_peak']:.0%} of peak)",
    )


def format_table(r: dict[str, Any]) -> str:
    from .pipelines import pipeline

    rows = []
    for name in r["pipelines"]:
        frames = r.get(f"{name}_input_shape", [0, "?"])[1]
        rows.append(_rate_row(f"{pipeline(name).label} training ({frames} frames)", r, name))
        if f"{name}_speedup" in r:
            rows.append((f"  speedup over the {pipeline('original').label}", f"{r[f'{name}_speedup']:.1f}x", ""))
    for name in r.get("equal_memory", []):
        rows.append(_rate_row(f"{name.replace('_', ' ')} (batch {r[f'{name}_batch']})", r, name))
        if f"{name}_speedup" in r:
            rows.append((f"  speedup over the {pipeline('original').label}", f"{r[f'{name}_speedup']:.1f}x", ""))
    rows += [
        _rate_row(f"embedding extraction (batch {r['embed_batch']})", r, "embed"),
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
