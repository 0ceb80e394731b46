"""``build_report(cfg)``: the one library entry point of the reports stage.

    mosquito-ssl reports build runs/sweep/results.sqlite --out runs/sweep/report

Reads the store (read-only), aggregates over seeds, tests against the reference, draws the
plots and writes report.html, report.md, tables/ and plots/ into ``cfg.out``. Recomputes no
model output and never imports torch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import pandas as pd

from ..errors import ConfigError, StoreError
from ..runs import write_text_atomic
from . import html, plots, stats, tables
from .load import SSL_COLUMNS, Store, load_store, read_confusion, read_log_history, read_predictions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReportConfig:
    """What to report and how; ``out`` defaults to ``<store folder>/report``."""

    store: Path
    out: Path | None = None
    metrics: tuple[str, ...] = ("balanced_accuracy", "macro_f1")
    split: str = "test"
    rows: tuple[str, ...] = ("mask_strength",)
    columns: tuple[str, ...] = ("freeze",)
    probes: tuple[str, ...] = ()
    reference: str = "encoder=random"
    decimals: int = 3
    percent: bool = False
    ci: bool = False
    correction: str = "holm"
    test: str = "ttest"
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
    def out_dir(self) -> Path:
        return Path(self.out) if self.out is not None else Path(self.store).parent / "report"

    def stats_settings(self) -> stats.StatsSettings:
        return stats.StatsSettings(
            reference=stats.parse_reference(self.reference),
            correction=self.correction,
            test=self.test,
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
    tables.check_keys(store.results, cfg.rows, "--rows")
    tables.check_keys(store.results, cfg.columns, "--columns")
    headline = tables.select(store.results, cfg.split, cfg.metrics, cfg.probes)
    if headline.empty:
        raise StoreError(f"{cfg.store} has no headline rows (layer NULL) for split {cfg.split!r}")
    layers = tables.select(store.results, cfg.split, cfg.metrics, cfg.probes, layerwise=True)
    keys = tables.row_keys(headline, cfg.rows, cfg.columns)
    headline = tables.label_settings(headline, keys)
    layers = tables.label_settings(layers, tables.row_keys(layers, cfg.rows, ())) if len(layers) else layers
    return ReportRows(store, headline, layers, keys)


def analyse(prep: ReportRows, cfg: ReportConfig) -> ReportRows:
    """Statistics against the reference, then per-cell aggregates marked best / significant."""
    run_dirs = prep.store.cells.set_index("cell_id")["run_dir"]
    predictions = lru_cache(maxsize=None)(lambda cell: read_predictions(run_dirs.get(cell)))
    # The reference shares the table columns and any row key a baseline has too (freeze, pooling).
    match = [*cfg.columns, *(k for k in prep.keys if k not in SSL_COLUMNS)]
    match = prep.match = [k for k in dict.fromkeys(match) if k not in ("metric", "probe")]
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


def loss_histories(prep: ReportRows) -> dict[str, tuple[str, list]]:
    """pretrain_dir -> (mask setting label, log_history) for the done ssl cells."""
    done = prep.store.done
    ssl = done[(done["encoder"] == "ssl") & done["pretrain_dir"].notna()].drop_duplicates("pretrain_dir")
    varying = [c for c in SSL_COLUMNS if ssl[c].nunique() > 1] or ["method"]
    ssl = ssl.sort_values([*varying, "seed"])  # legend in mask order, not store order
    out = {}
    for _, cell in ssl.iterrows():
        history = read_log_history(cell["pretrain_dir"])
        if history is None:
            log.info("no log_history.json in %s: left out of the loss plot", cell["pretrain_dir"])
            continue
        out[cell["pretrain_dir"]] = (", ".join(f"{c}={tables._value_text(cell[c])}" for c in varying), history)
    return out


def make_plots(prep: ReportRows, cfg: ReportConfig, out: Path) -> list[plots.Plot]:
    made = []
    for metric in cfg.metrics:
        made.append(plots.mask_strength_plot(prep.headline, metric, out, cfg.percent))
    for metric in cfg.metrics:
        made.append(plots.method_plot(prep.headline, metric, out, cfg.percent))
    for metric in cfg.metrics:
        made.append(plots.layerwise_plot(prep.layers, metric, out, cfg.percent))
    made.append(plots.confusion_plot(confusion_matrices(prep, cfg), out))
    made.append(plots.loss_plot(loss_histories(prep), out))
    for plot in made:
        if plot.skipped:
            log.info("plot %s skipped: %s", plot.name, plot.skipped)
    return made


def build_report(cfg: ReportConfig) -> Path:
    """Write report.html, report.md, tables/ and plots/ into ``cfg.out_dir``; returns report.html."""
    prep = analyse(prepare(cfg), cfg)
    out = cfg.out_dir
    out.mkdir(parents=True, exist_ok=True)
    written = html.write_tables(prep, cfg, out / "tables")
    made = make_plots(prep, cfg, out / "plots")
    page = html.assemble(prep, cfg, written, made, datetime.now().strftime("%Y-%m-%d %H:%M"))
    write_text_atomic(out / "report.md", html.render_md(page))
    path = write_text_atomic(out / "report.html", html.render_html(page))
    log.info("report written to %s", path)
    return path
