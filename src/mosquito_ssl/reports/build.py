"""``build_report(cfg)``: the one library entry point of the reports stage.

    mosquito-ssl reports build runs/sweep/results.sqlite --out runs/sweep/report
    mosquito-ssl reports build results.sqlite --rows method,mask_ratio --reference method=mae,mask_ratio=0.8

Reads the store (read-only), aggregates over seeds, tests against the reference, draws the
plots and writes report.html, report.md, tables/ and plots/ into ``cfg.out`` (every file through
``files.py``: names from the store sanitised, nothing written outside ``cfg.out``). Recomputes no
model output and never imports torch. Warnings for the console (an unmatched reference) go to
the ``warn`` callable (the CLI prints ``warning: ...``; default: the log).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import pandas as pd

from ..errors import ConfigError, StoreError
from . import curves, files, html, labels, plots, stats, tables
from .axis_plot import axis_plot
from .load import Store, load_store, read_confusion, read_log_history, read_loss_name, read_predictions
from .loss_plot import PretrainHistory, loss_plot
from .reference import DEFAULT_REFERENCE, check_reference

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReportConfig:
    """What to report and how; ``out`` defaults to ``<store folder>/report``; ``rows`` () = the
    settings that vary (``labels.row_keys``); ``significance`` = the paired test that decides †;
    ``reference`` None = ``encoder=random`` (no pretraining), only warned about when absent,
    while a reference that is given and matches nothing is an error."""

    store: Path
    out: Path | None = None
    metrics: tuple[str, ...] = ("balanced_accuracy", "macro_f1")
    split: str = "test"
    rows: tuple[str, ...] = ()
    columns: tuple[str, ...] = ("freeze",)
    probes: tuple[str, ...] = ()
    reference: str | None = None
    decimals: int = 3
    percent: bool = False
    ci: bool = False
    correction: str = "holm"
    significance: str = "ttest"
    alpha: float = 0.05

    def __post_init__(self):
        if not self.metrics:
            raise ConfigError("--metric: give at least one metric, e.g. --metric balanced_accuracy")
        if not 0 <= self.decimals <= 10:
            raise ConfigError(f"--decimals {self.decimals}: use 0 to 10")
        if not 0 < self.alpha < 1:
            raise ConfigError(f"--alpha {self.alpha}: use a level between 0 and 1, e.g. 0.05")
        if set(self.rows) & set(self.columns):
            raise ConfigError(f"--rows and --columns share {sorted(set(self.rows) & set(self.columns))}")

    @property
    def reference_text(self) -> str:
        return self.reference if self.reference is not None else DEFAULT_REFERENCE

    @property
    def out_dir(self) -> Path:
        return Path(self.out) if self.out is not None else Path(self.store).parent / "report"

    def stats_settings(self) -> stats.StatsSettings:
        return stats.StatsSettings(
            reference=stats.parse_reference(self.reference_text),
            correction=self.correction,
            significance=self.significance,
            alpha=self.alpha,
        )


@dataclass
class ReportRows:
    """Store rows selected and labelled for tables, statistics and plots."""

    store: Store
    headline: pd.DataFrame
    layers: pd.DataFrame
    keys: list[str]
    match: list[str] = field(default_factory=list)
    agg: pd.DataFrame = field(default_factory=pd.DataFrame)
    stats: pd.DataFrame = field(default_factory=pd.DataFrame)


def prepare(cfg: ReportConfig) -> ReportRows:
    """Load, validate the options against the store, label settings; no files written."""
    store = load_store(Path(cfg.store))
    valid = store.setting_columns
    labels.check_keys(valid, cfg.rows, "--rows")
    labels.check_keys(valid, cfg.columns, "--columns")
    labels.check_keys(valid, [k for k, _ in cfg.stats_settings().reference], "--reference")
    headline = tables.select(store.results, cfg.split, cfg.metrics, cfg.probes)
    if headline.empty:
        raise StoreError(f"{cfg.store} has no headline rows (layer NULL) for split {cfg.split!r}")
    layers = tables.select(store.results, cfg.split, cfg.metrics, cfg.probes, layerwise=True)
    keys = labels.row_keys(headline, cfg.rows, cfg.columns, list(store.axes))
    headline = labels.label_settings(headline, keys)
    if len(layers):
        layers = labels.label_settings(layers, labels.row_keys(layers, cfg.rows, (), list(store.axes)))
    return ReportRows(store, headline, layers, keys)


def match_keys(prep: ReportRows, cfg: ReportConfig) -> list[str]:
    """Keys a setting and its reference share besides seed: the table columns and the probe-side
    row keys (pooling, a swept ``[probe]`` setting), less those the reference itself names;
    pretraining settings are what is compared, and baselines have none."""
    named = {k for k, _ in cfg.stats_settings().reference}
    own = {"encoder", *prep.store.pretrain_settings, *named}
    match = [*cfg.columns, *(k for k in prep.keys if k not in own)]
    return [k for k in dict.fromkeys(match) if k not in ("metric", "probe")]


def analyse(prep: ReportRows, cfg: ReportConfig, warn: Callable[[str], None] = log.warning) -> ReportRows:
    """Statistics against the reference, then per-cell aggregates marked best / significant;
    ConfigError when a given ``--reference`` matches nothing, ``warn`` when it misses tables."""
    run_dirs = prep.store.cells.set_index("cell_id")["run_dir"]
    predictions = lru_cache(maxsize=None)(lambda cell: read_predictions(run_dirs.get(cell)))
    match = prep.match = match_keys(prep, cfg)
    problem = check_reference(prep.headline, cfg.reference, match, cfg.split)
    if problem:
        warn(problem)
    result = stats.compare(prep.headline, match, cfg.stats_settings(), predictions, cfg.split)
    prep.stats = _sorted(result, prep.headline, cfg)
    keys = list(dict.fromkeys(["metric", "probe", "encoder", "setting", "order", *prep.keys, *cfg.columns]))
    agg = tables.aggregate(prep.headline, keys)
    sig = prep.stats[["metric", "probe", *match, "setting", "significant"]]
    agg = agg.merge(sig, on=["metric", "probe", *match, "setting"], how="left")
    agg["significant"] = agg["significant"].fillna(False).astype(bool)
    prep.agg = tables.mark_best(agg)
    return prep


def _sorted(result: pd.DataFrame, head: pd.DataFrame, cfg: ReportConfig) -> pd.DataFrame:
    """Statistics rows in table order: metric as given, probe, freeze, then setting order."""
    if result.empty:
        return result
    rank = head.drop_duplicates("setting").set_index("setting")["order"]
    keys = result.assign(
        _m=result["metric"].map({m: i for i, m in enumerate(cfg.metrics)}), _s=result["setting"].map(rank)
    )
    if "freeze" in result.columns:
        keys["_c"] = keys["freeze"].map({f: i for i, f in enumerate(tables.freeze_order(keys["freeze"]))})
    else:
        keys["_c"] = keys[list(cfg.columns)].astype(str).agg("|".join, axis=1)
    return result.loc[keys.sort_values(["_m", "probe", "_c", "_s"], kind="stable").index].reset_index(drop=True)


def _summed_confusion(cells: pd.DataFrame, split: str) -> pd.DataFrame | None:
    mats = [m for m in (read_confusion(d, split) for d in cells["run_dir"]) if m is not None]
    if not mats:
        return None
    total = mats[0].astype(float)
    for mat in mats[1:]:  # seeds may have seen different classes: align on the union
        total = total.add(mat.astype(float), fill_value=0)
    return total.fillna(0)


def confusion_matrices(prep: ReportRows, cfg: ReportConfig) -> dict[str, pd.DataFrame]:
    """Best non-reference setting (first metric) and the reference with the same freeze and
    probe: title -> confusion counts summed over seeds; {} when either has no matrices."""
    head = prep.headline
    is_ref = stats.reference_mask(head, cfg.stats_settings().reference)
    first = prep.agg[prep.agg["metric"] == cfg.metrics[0]]
    candidates = first[~first["setting"].isin(set(head.loc[is_ref, "setting"]))]
    if candidates.empty or not is_ref.any():
        return {}
    # The best setting that has a reference to compare with (same freeze, probe, pooling...):
    # a hand-crafted baseline, say, may top the table but has no reference cell.
    for _, best in candidates.sort_values("mean", ascending=False, kind="stable").iterrows():
        same = (head["probe"] == best["probe"]) & (head["metric"] == best["metric"])
        for col in prep.match:
            same &= head[col].astype(str) == str(best[col])
        if (same & is_ref).any():
            break
    else:
        return {}
    where = ", ".join([*(str(best[c]) for c in prep.match), str(best["probe"])])
    out = {}
    for sel in (same & (head["setting"] == best["setting"]), same & is_ref):
        cells = prep.store.cells[prep.store.cells["cell_id"].isin(head.loc[sel, "cell_id"])]
        matrix = _summed_confusion(cells, cfg.split) if len(cells) else None
        if matrix is None:
            return {}
        seeds = f"{len(cells)} seed" + ("s" if len(cells) > 1 else "")
        out[f"{head.loc[sel, 'setting_long'].iloc[0]}\n({where}; {seeds})"] = matrix
    return out


def loss_histories(prep: ReportRows) -> dict[str, PretrainHistory]:
    """pretrain_dir -> its setting label, log_history and loss name, for the done ssl cells."""
    done = prep.store.done
    ssl = done[(done["encoder"] == "ssl") & done["pretrain_dir"].notna()].drop_duplicates("pretrain_dir")
    varying = [c for c in prep.store.pretrain_settings if ssl[c].nunique() > 1] or ["method"]
    ssl = ssl.sort_values([*varying, "seed"])  # legend in setting order, not store order
    out = {}
    for _, cell in ssl.iterrows():
        history = read_log_history(cell["pretrain_dir"])
        if history is None:
            log.info("no log_history.json in %s: left out of the loss plot", cell["pretrain_dir"])
            continue
        label = labels.named_values(cell, varying)
        out[cell["pretrain_dir"]] = PretrainHistory(label, history, read_loss_name(cell["pretrain_dir"]))
    return out


def make_plots(prep: ReportRows, cfg: ReportConfig, out: Path) -> list[plots.Plot]:
    """Metric vs mask_strength and vs each numeric swept setting, per method, layer-wise,
    confusion matrices and the pretraining loss; skipped plots say why."""
    made = []
    keys = [*prep.keys, *cfg.columns]
    counts = curves.label_axis(prep.store.axes)  # a learning curve: log x, an "all" tick for all groups
    for axis in dict.fromkeys(["mask_strength", *prep.store.numeric_axes]):
        made += [axis_plot(prep.headline, axis, m, out, cfg.percent, keys, axis == counts) for m in cfg.metrics]
    for metric in cfg.metrics:
        made.append(plots.method_plot(prep.headline, metric, out, cfg.percent))
    for metric in cfg.metrics:
        made.append(plots.layerwise_plot(prep.layers, metric, out, cfg.percent))
    made.append(plots.confusion_plot(confusion_matrices(prep, cfg), out))
    made.append(loss_plot(loss_histories(prep), out))
    for plot in made:
        if plot.skipped:
            log.info("plot %s skipped: %s", plot.name, plot.skipped)
    return made


def build_report(cfg: ReportConfig, warn: Callable[[str], None] = log.warning) -> Path:
    """Write report.html, report.md, tables/ and plots/ into ``cfg.out_dir``; returns report.html."""
    prep = analyse(prepare(cfg), cfg, warn)
    out = cfg.out_dir
    out.mkdir(parents=True, exist_ok=True)
    tables_dir = files.subfolder(out, "tables")
    written = [*html.write_tables(prep, cfg, tables_dir), *curves.write_tables(prep, cfg, tables_dir, warn)]
    made = make_plots(prep, cfg, files.subfolder(out, "plots"))
    files.check_distinct([*(f for t in written for f in t.files), *(f for p in made for f in p.files)])
    page = html.assemble(prep, cfg, written, made, datetime.now().strftime("%Y-%m-%d %H:%M"))
    files.write_text(out, "report.md", html.render_md(page))
    path = files.write_text(out, "report.html", html.render_html(page))
    log.info("report written to %s", path)
    return path
