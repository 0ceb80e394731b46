"""Writing the report files: tables/*.{md,tex,csv}, report.md and a self-contained report.html.

    mosquito-ssl reports build runs/sweep/results.sqlite --out runs/sweep/report

report.html needs no network: CSS is inline and every image is a base64 ``data:`` URI.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import pandas as pd
from markupsafe import escape

from . import labels, load, stats, tables
from .files import file_stem, write_text
from .plots import Plot


@dataclass
class TableOut:
    """One rendered table: its title, caption, note, Markdown/HTML text and written files."""

    title: str
    caption: str
    note: str
    md: str
    html: str
    files: list[Path] = field(default_factory=list)


@dataclass
class Page:
    header: dict[str, str]
    tables: list[TableOut]
    plots: list[Plot]
    failed: pd.DataFrame


def _html_table(table: pd.DataFrame) -> str:
    """Cells are our own HTML (numbers, <b>); labels come from the store and are escaped."""
    table = table.copy()
    table.index = table.index.map(lambda v: tuple(map(escape, v)) if isinstance(v, tuple) else escape(v))
    table.columns = table.columns.map(lambda v: tuple(map(escape, v)) if isinstance(v, tuple) else escape(v))
    return table.to_html(escape=False, border=0, classes="tbl", na_rep=tables.MISSING)


def _cells_note(cfg) -> str:
    ci = " [95% t-based CI]" if cfg.ci else ""
    unit = " Values in percent." if cfg.percent else ""
    return (
        f"Cells: mean ± s.d. over seeds{ci} (n = number of seeds; with one seed the value "
        f"alone); best cell per probe in bold.{unit}"
    )


def _metric_table(prep, cfg, metric: str, note: str, out: Path) -> TableOut:
    agg = prep.agg[prep.agg["metric"] == metric]
    fmt = tables.NumberFormat(cfg.decimals, cfg.percent, cfg.ci)
    probes = sorted(agg["probe"].unique())
    caption = f"{tables.metric_label(metric, cfg.percent)} on the {cfg.split} split"
    caption += f", {probes[0]} probe" if len(probes) == 1 else ""
    render = lambda style: tables.wide(agg, prep.keys, cfg.columns, fmt, style)  # noqa: E731
    md = tables.to_markdown(render("md"))
    name = file_stem(metric)  # the metric comes from the store: never a path
    files = [
        write_text(out, f"{name}.md", f"{caption}\n\n{md}\n{note}\n", metric),
        write_text(out, f"{name}.tex", tables.to_latex(render("latex"), caption, f"tab:{name}", note), metric),
    ]
    numbers = agg.sort_values(["probe", "order", *cfg.columns], kind="stable").drop(
        columns=["order", "setting_long"], errors="ignore"
    )
    files.append(write_text(out, f"{name}.csv", numbers.to_csv(index=False), metric))
    return TableOut(tables.metric_label(metric, cfg.percent), caption, note, md, _html_table(render("html")), files)


def stats_display(result: pd.DataFrame, cfg) -> pd.DataFrame:
    """The statistics table with formatted numbers (CSV keeps the raw ones)."""
    scale = 100.0 if cfg.percent else 1.0
    num = lambda v: tables.MISSING if pd.isna(v) else f"{v * scale:+.{cfg.decimals}f}"  # noqa: E731
    pval = lambda v: tables.MISSING if pd.isna(v) else f"{v:.3g}"  # noqa: E731
    match = [c for c in result.columns if c not in stats.RESULT_COLUMNS]
    out = result[["metric", "probe", *match, "setting", "reference", "significance_test", "n_pairs"]].copy()
    out = out.rename(columns={"n_pairs": "n pairs", "significance_test": "significance test"})
    for col in match:  # a swept number reads 5, not 5.0; NULL (not applicable) as MISSING
        out[col] = out[col].map(lambda v: tables.MISSING if pd.isna(v) else labels.value_text(v))
    out["mean diff"] = result["mean_diff"].map(num)
    out["95% CI"] = [
        tables.MISSING if pd.isna(lo) else f"[{num(lo)}, {num(hi)}]"
        for lo, hi in zip(result["ci_low"], result["ci_high"], strict=True)
    ]
    for col, name in (
        ("p_t", "p (t)"),
        ("p_wilcoxon", "p (Wilcoxon)"),
        ("p_mcnemar", "p (McNemar)"),
        ("p_adjusted", "adjusted p"),
    ):
        out[name] = result[col].map(pval)
    out["significant"] = result["significant"].map({True: "†", False: ""})
    out["note"] = result["note"]
    return out


def _stats_table(prep, cfg, note: str, out: Path) -> TableOut:
    result = prep.stats
    files = [write_text(out, "stats.csv", result.to_csv(index=False))]
    shown = stats_display(result, cfg)
    caption = f"Paired comparisons with the reference ({cfg.reference_text}) on the {cfg.split} split"
    md = tables.to_markdown(shown.set_index("metric")) if len(shown) else "No comparisons.\n"
    tex_table = shown.set_index(["metric", "setting"]).map(tables.tex_escape)
    files.append(write_text(out, "stats.md", f"{caption}\n\n{md}\n{note}\n"))
    if len(shown):
        files.append(write_text(out, "stats.tex", tables.to_latex(tex_table, caption, "tab:stats", note)))
    # The statistics table is wide: it scrolls inside the page instead of running off it.
    html = (
        f'<div class="wide">{shown.to_html(index=False, border=0, classes="tbl")}</div>'
        if len(shown)
        else "<p>No comparisons.</p>"
    )
    return TableOut("Statistics", caption, note, md, html, files)


def _reference_label(prep, cfg) -> str:
    """The reference as the notes name it: its label, without the keys it shares with each setting
    ("no pretraining", not "no pretraining (frozen)" when freeze is a row key); else the option."""
    refs = prep.stats["reference"].unique()
    if len(refs) == 1:
        return str(refs[0])
    rows = prep.headline[stats.reference_mask(prep.headline, cfg.stats_settings().reference)]
    keys = [k for k in prep.keys if k not in prep.match]
    names = {labels.setting_label(row, keys) for _, row in rows.iterrows()}
    return names.pop() if len(names) == 1 else cfg.reference_text


def write_tables(prep, cfg, out: Path) -> list[TableOut]:
    """tables/<metric>.{md,tex,csv} for each metric and tables/stats.{md,tex,csv}."""
    out.mkdir(parents=True, exist_ok=True)
    ref_label = _reference_label(prep, cfg)
    stats_note = stats.describe(prep.stats, cfg.stats_settings(), ref_label, prep.match)
    note = f"{_cells_note(cfg)} {stats_note}"
    written = [_metric_table(prep, cfg, metric, note, out) for metric in cfg.metrics]
    return [*written, _stats_table(prep, cfg, stats_note, out)]


def assemble(prep, cfg, written: list[TableOut], made: list[Plot], date: str) -> Page:
    store = prep.store
    seeds = sorted(int(s) for s in store.done["seed"].dropna().unique())
    header = {
        "Store": str(Path(store.path).resolve()),
        "Cells": f"{len(store.done)} done, {len(store.failed)} failed",
        "Seeds": ", ".join(map(str, seeds)) or tables.MISSING,
        "Split": cfg.split,
        "Probes": ", ".join(sorted(prep.headline["probe"].unique())),
        "Reference": cfg.reference_text,
        **load.protocol_summary(store.done["run_dir"]),
        "Date": date,
    }
    # The swept settings (schema 3) tell failed cells apart where the fixed columns do not.
    failed = store.failed[["cell_id", "encoder", "mask_strength", "freeze", "probe", "seed", *store.axes, "error"]]
    return Page(header, written, made, failed)


_MD = """# mosquito-ssl report

{% for k, v in page.header.items() %}- **{{ k }}**: {{ v }}
{% endfor %}
## Comparison tables
{% for t in page.tables %}
### {{ t.title }}

{{ t.caption }}

{{ t.md }}
*Note.* {{ t.note }}

Files: {% for f in t.files %}[{{ f.name }}](tables/{{ f.name }}) {% endfor %}
{% endfor %}
## Plots
{% for p in page.plots if not p.skipped %}
### {{ p.title }}

![{{ p.title }}](plots/{{ p.png.name }}) ([PDF](plots/{{ p.name }}.pdf))
{% endfor %}
{% set skipped = page.plots | selectattr("skipped") | list %}{% if skipped %}
### Skipped plots
{% for p in skipped %}
- {{ p.title }}: {{ p.skipped }}{% endfor %}
{% endif %}
## Failed cells
{% if page.failed.empty %}
None.
{% else %}
{{ failed_md }}{% endif %}"""

_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>mosquito-ssl report</title>
<style>
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#222;line-height:1.45}
h1,h2,h3{font-weight:600} h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
table.tbl{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
.wide{overflow-x:auto} .wide table.tbl{font-size:.8rem}
table.tbl th,table.tbl td{padding:.3rem .7rem;border-top:1px solid #ddd;text-align:left;vertical-align:top}
table.tbl thead th{border-bottom:2px solid #444} .note{font-size:.85rem;color:#555;max-width:60rem}
dl.hdr{display:grid;grid-template-columns:max-content auto;gap:.15rem 1rem} dl.hdr dt{font-weight:600}
img{max-width:100%;height:auto;border:1px solid #eee} .skip{color:#8a5a00}
</style></head><body>
<h1>mosquito-ssl report</h1>
<dl class="hdr">{% for k, v in page.header.items() %}<dt>{{ k }}</dt><dd>{{ v }}</dd>{% endfor %}</dl>
<h2>Comparison tables</h2>
{% for t in page.tables %}<h3>{{ t.title }}</h3><p>{{ t.caption }}</p>
{{ t.html | safe }}<p class="note"><i>Note.</i> {{ t.note }}</p>{% endfor %}
<h2>Plots</h2>
{% for p in page.plots if not p.skipped %}<h3>{{ p.title }}</h3>
<img alt="{{ p.title }}" src="data:image/png;base64,{{ images[p.name] }}">{% endfor %}
{% set skipped = page.plots | selectattr("skipped") | list %}{% if skipped %}<h3>Skipped plots</h3><ul>
{% for p in skipped %}<li class="skip">{{ p.title }}: {{ p.skipped }}</li>{% endfor %}</ul>{% endif %}
<h2>Failed cells</h2>
{% if page.failed.empty %}<p>None.</p>{% else %}{{ failed_html | safe }}{% endif %}
</body></html>
"""


def render_md(page: Page) -> str:
    failed = tables.to_markdown(page.failed.set_index("cell_id")) if len(page.failed) else ""
    return jinja2.Template(_MD).render(page=page, failed_md=failed)


def render_html(page: Page) -> str:
    images = {p.name: base64.b64encode(p.files[0].read_bytes()).decode("ascii") for p in page.plots if p.files}
    failed = page.failed.to_html(index=False, border=0, classes="tbl", na_rep="")
    env = jinja2.Environment(autoescape=True)
    return env.from_string(_HTML).render(page=page, images=images, failed_html=failed)
