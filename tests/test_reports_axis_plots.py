"""Metric vs a numeric setting (axis_plot) and the pretraining loss plot: what the figures show."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy import stats as sps

from mosquito_ssl.reports import axis_plot as axis_plot_module
from mosquito_ssl.reports import loss_plot as loss_plot_module
from mosquito_ssl.reports.axis_plot import axis_plot
from mosquito_ssl.reports.build import ReportConfig, build_report, loss_histories, prepare
from mosquito_ssl.reports.files import file_stem
from mosquito_ssl.reports.loss_plot import PretrainHistory, history_frame, loss_axis_label, loss_plot
from reports_fixtures import CLIPS, LOSS_NAMES, MASK_RATIO, NORMALIZE, Axis, make_store, make_store_v3, read_results


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions would save (nothing written)."""
    saved = []

    def keep(fig, out_dir, name):
        saved.append(fig)
        return []

    monkeypatch.setattr(axis_plot_module, "save", keep)
    monkeypatch.setattr(loss_plot_module, "save", keep)
    return saved


@pytest.fixture(scope="module")
def v3(tmp_path_factory):
    return make_store_v3(tmp_path_factory.mktemp("v3"))


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return make_store_v3(tmp_path_factory.mktemp("clips"), axes=(MASK_RATIO, CLIPS), freezes=("frozen",))


def draw(store, axis, figures, metric="balanced_accuracy"):
    cfg = ReportConfig(store=store, metrics=(metric,))
    prep = prepare(cfg)
    plot = axis_plot(prep.headline, axis, metric, store.parent, keys=[*prep.keys, *cfg.columns])
    assert plot.skipped is None
    return figures[-1].axes[0]


def headline(store, metric="balanced_accuracy"):
    res = read_results(store)
    return res[(res["split"] == "test") & (res["metric"] == metric) & res["layer"].isna()]


def t_interval(values):
    values = np.asarray(values, float)
    half = sps.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return values.mean() - half, values.mean() + half


def legend_texts(ax) -> list[str]:
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()]


def test_mask_ratio_plot_means_bands_and_baselines(v3, figures):
    ax = draw(v3, "mask_ratio", figures)
    res = headline(v3)
    assert ax.get_xscale() == "linear" and ax.get_xlabel() == "mask_ratio"
    for line, band, freeze in zip(ax.lines[:2], ax.collections[:2], ("frozen", "full"), strict=True):
        mae = res[(res["method"] == "mae") & (res["freeze"] == freeze)]
        np.testing.assert_allclose(line.get_xdata(), [0.6, 0.8])
        np.testing.assert_allclose(line.get_ydata(), mae.groupby("mask_ratio")["value"].mean().to_numpy())
        vertices = band.get_paths()[0].vertices
        for ratio, group in mae.groupby("mask_ratio"):
            ys = vertices[np.isclose(vertices[:, 0], ratio), 1]
            np.testing.assert_allclose([ys.min(), ys.max()], t_interval(group["value"]))
    flat = [line.get_ydata()[0] for line in ax.lines[2:]]  # no pretraining: one horizontal line per freeze
    want = res[res["encoder"] == "random"].groupby("freeze")["value"].mean()
    np.testing.assert_allclose(sorted(flat), sorted(want))
    assert legend_texts(ax) == ["frozen", "full", "no pretraining"]


def test_probe_setting_plot_log_x_one_line_per_other_setting(clips, figures):
    ax = draw(clips, "max_clips_per_group", figures, metric="macro_f1")
    assert ax.get_xscale() == "log"  # 5 .. 500 spans a factor of 100
    assert [t.get_text() for t in ax.get_xticklabels()] == ["5", "20", "500"]
    res = headline(clips, "macro_f1")
    drawn = [np.asarray(line.get_ydata(), float) for line in ax.lines]
    lines = {
        "mae, mask_ratio=0.6": res["mask_ratio"] == 0.6,
        "mae, mask_ratio=0.8": res["mask_ratio"] == 0.8,
        "reconstruct, mask_strength=0.5": res["mask_strength"] == 0.5,
        "reconstruct, mask_strength=1": res["mask_strength"] == 1.0,
        "no pretraining": res["encoder"] == "random",  # the baseline has the setting too: a line over x
    }
    for label, rows in lines.items():
        want = res[rows].groupby("max_clips_per_group")["value"].mean().to_numpy()
        assert any(len(y) == 3 and np.allclose(y, want) for y in drawn), label
    texts = legend_texts(ax)
    assert texts == ["frozen", *lines]
    assert not any("max_clips_per_group" in t for t in texts)


@pytest.mark.parametrize("axis", ["mask_ratio", "max_clips_per_group"])
def test_one_value_skips_with_the_setting_named(tmp_path, axis):
    ratio = Axis("mask_ratio", "pretrain", "mask_ratio", (0.75,), methods=("mae",))
    clips = Axis("max_clips_per_group", "probe", "max_clips_per_group", (20,))
    store = make_store_v3(tmp_path, axes=(ratio, clips), seeds=(0, 1), freezes=("frozen",))
    out = build_report(ReportConfig(store=store, out=tmp_path / "r", metrics=("macro_f1",))).parent
    skipped = (out / "report.md").read_text().split("### Skipped plots")[1]
    assert f"fewer than two {axis} values among pretrained (ssl) cells" in skipped
    assert (out / "plots" / "mask_strength_macro_f1.png").exists()


def test_a_plot_per_numeric_setting_with_safe_file_names(tmp_path):
    odd = Axis("Mask.Ratio", "pretrain", "mask_ratio", (0.6, 0.8), methods=("mae",))
    store = make_store_v3(tmp_path, axes=(odd, CLIPS, NORMALIZE), seeds=(0, 1), freezes=("frozen",))
    out = build_report(ReportConfig(store=store, out=tmp_path / "r", metrics=("macro_f1",))).parent
    names = sorted(p.stem for p in (out / "plots").glob("*.png"))
    odd_stem = file_stem("Mask.Ratio")  # lossy (case, "."): a hash of the name keeps it apart
    assert re.fullmatch(r"mask_ratio-[0-9a-f]{8}", odd_stem) and odd_stem != file_stem("mask_ratio")
    assert {"mask_strength_macro_f1", f"{odd_stem}_macro_f1", "max_clips_per_group_macro_f1"} <= set(names)
    assert not any(n.startswith("normalize") for n in names)  # a text setting has no x axis
    assert all(re.fullmatch(r"[a-z0-9_-]+", n) for n in names)
    assert re.fullmatch(r"mask_ratio_x-[0-9a-f]{8}", file_stem("Mask Ratio/../x"))


def test_history_reads_eval_loss_or_eval_mse():
    history = [{"epoch": 1.0, "loss": 1.0}, {"epoch": 1.0, "eval_loss": 0.7, "eval_mse": 0.9}]
    named = history_frame({"a": PretrainHistory("mae", history, "masked-patch MSE")})
    old = history_frame({"a": PretrainHistory("reconstruct", history)})  # eval_mse was the selection loss
    only_loss = history_frame({"a": PretrainHistory("mae", [{"epoch": 2.0, "eval_loss": 0.5}])})
    val = lambda frame: frame.loc[frame["curve"] == "validation loss", "loss"].tolist()  # noqa: E731
    assert val(named) == [0.7] and val(old) == [0.9] and val(only_loss) == [0.5]
    assert named.loc[named["curve"] == "train loss", "loss"].tolist() == [1.0]


@pytest.mark.parametrize(
    "names, label",
    [
        (["masked-patch MSE", "masked-patch MSE"], "Masked-patch MSE"),
        (["masked-patch MSE", "reconstruction MSE"], "Masked-patch MSE / reconstruction MSE"),
        (["masked-patch MSE", None], "Validation loss"),
        ([None, None], "Validation loss"),
    ],
)
def test_loss_axis_label(names, label):
    histories = {str(i): PretrainHistory("x", [], name) for i, name in enumerate(names)}
    assert loss_axis_label(histories) == label


def test_loss_plot_names_the_method_loss(tmp_path, figures):
    store = make_store_v3(tmp_path, methods=("mae",), loss_names=LOSS_NAMES, seeds=(0,))
    prep = prepare(ReportConfig(store=store))
    assert loss_plot(loss_histories(prep), tmp_path).skipped is None
    ax = figures[-1].axes[0]
    assert ax.get_ylabel() == "Masked-patch MSE"
    texts = legend_texts(ax)
    assert {"mask_ratio=0.6", "mask_ratio=0.8", "train loss", "validation loss"} <= set(texts)
    epochs = np.arange(1, 7)
    assert any(np.allclose(line.get_ydata(), 1.1 / epochs) for line in ax.lines)  # eval_loss of the fixture


def test_loss_plot_of_older_runs_says_validation_loss(tmp_path, figures):
    store = make_store(tmp_path, methods=("reconstruct", "mae"), layerwise=False)
    prep = prepare(ReportConfig(store=store))
    loss_plot(loss_histories(prep), tmp_path)
    ax = figures[-1].axes[0]
    assert ax.get_ylabel() == "Validation loss"
    texts = legend_texts(ax)
    assert {"mae", "reconstruct, mask_strength=0.5", "reconstruct, mask_strength=2"} <= set(texts)
    assert not any("nan" in t for t in texts)
