"""Setting axes of a sweep grid: grammar, which cells each axis expands, per-cell configs, stable ids."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mosquito_ssl import runs
from mosquito_ssl.benchmarks.spec import SweepSpec
from mosquito_ssl.cli import app
from mosquito_ssl.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
# "/" exists everywhere and resolves to itself: ids that depend on the data path stay fixed.
FIXED_DATA = {"sweep.pretrain_data": "/", "sweep.probe_data": "/", "sweep.audioset": "/"}
BASE = """
[sweep]
name = "t"
out = "{out}"
pretrain_data = "{data}"
probe_data = "{data}"
baselines = ["handcrafted"]

[grid]
method = {methods}
{axes}
freeze = ["frozen", "full"]
probe = ["linear", "finetune"]
seed = [0]

[pretrain]
preset = "tiny"
epochs = 1
batch_size = 8

[probe]
epochs = 1
batch_size = 8
"""
AXES = """mask_strength = [0.5, 1.0]
"pretrain.mask_ratio" = [0.6, 0.8]
"probe.max_clips_per_group" = [5, 20]"""
# Cell ids computed by the code before setting axes (git 6c12c96) for BASE with no axes and
# data "/": cells no axis applies to must keep them.
HEAD_IDS = {
    "ssl-mae-frozen-linear-freq_stack-s0": "553b313c181645d1",
    "ssl-ms1-specaugment-all-frozen-linear-freq_stack-s0": "704463335ae67ec8",
    "handcrafted-frozen-linear-none-s0": "12cb6d7735cb40ee",
}
# Cells whose results changed since, so whose ids must change (a resumed sweep never mixes the
# two): random:<preset> had one fixed initialisation then (now the seed picks the weights), and
# fine-tuning scored test from its train-only model (now refit on train + val, --refit).
CHANGED_IDS = {
    "random-frozen-linear-freq_stack-s0": "ea2dca6c58e81b25",
    "random-full-finetune-freq_stack-s0": "075d88bdc25772cb",
    "ssl-mae-full-finetune-freq_stack-s0": "ecb95e2446fd4973",
}


def load(tmp_path: Path, axes: str = AXES, methods: str = '["mae", "reconstruct"]', overrides=None, drop=()):
    """BASE with these grid axes, without the ``table.key`` settings in ``drop`` (which the grid sweeps)."""
    lines, table = [], ""
    for line in BASE.format(out=tmp_path / "out", data="/", methods=methods, axes=axes).splitlines():
        table = line.strip("[]") if line.startswith("[") else table
        if f"{table}.{line.partition(' =')[0]}" not in drop:
            lines.append(line)
    path = tmp_path / "spec.toml"
    path.write_text("\n".join(lines))
    return SweepSpec.load(path, overrides)


def by_name(cells) -> dict:
    return {c.name.rsplit("-", 1)[0]: c for c in cells}


def test_each_axis_expands_only_the_cells_that_use_it(tmp_path):
    spec = load(tmp_path)
    cells = spec.cells()
    mae = [c for c in cells if c.method == "mae"]
    rec = [c for c in cells if c.method == "reconstruct"]
    # 3 (freeze, probe) pairs x 2 max_clips_per_group x 2 of the method's own setting
    assert len(mae) == len(rec) == 3 * 2 * 2
    assert len([c for c in cells if c.encoder == "random"]) == 3 * 2
    assert len([c for c in cells if c.encoder == "handcrafted"]) == 2
    assert len({c.cell_id for c in cells}) == len(cells)
    assert len({tuple(sorted(c.columns().items(), key=str)) for c in cells}) == len(cells)  # no duplicates
    for c in cells:
        axes, pre = dict(c.axes), spec.pretrain_config(c) if c.encoder == "ssl" else None
        assert spec.probe_config(c).max_clips_per_group == axes["max_clips_per_group"]
        if c.method == "mae":
            assert c.mask_strength is None and pre.method_settings().mask_ratio == axes["mask_ratio"]
            assert f"-mask_ratio-{axes['mask_ratio']:g}-" in c.name
        elif c.method == "reconstruct":  # never given mae's setting; its own from mask_strength
            assert "mask_ratio" not in axes and pre.mask_ratio is None and pre.mask_strength == c.mask_strength
        else:
            assert "mask_ratio" not in axes and c.mask_strength is None
    assert {dict(c.axes)["mask_ratio"] for c in mae} == {0.6, 0.8}
    assert len({c.encoder_key for c in mae}) == len({c.encoder_key for c in rec}) == 2  # one pretraining each
    assert spec.axes_meta() == {
        "mask_ratio": {"table": "pretrain", "key": "mask_ratio", "numeric": True},
        "max_clips_per_group": {"table": "probe", "key": "max_clips_per_group", "numeric": True},
    }


def test_cells_an_axis_does_not_apply_to_keep_their_ids(tmp_path):
    plain = by_name(load(tmp_path, axes="", overrides=FIXED_DATA).cells())
    assert {k: plain[k].cell_id for k in HEAD_IDS} == HEAD_IDS
    assert all(plain[k].cell_id != old for k, old in CHANGED_IDS.items())
    swept = by_name(load(tmp_path, axes='"pretrain.mask_ratio" = [0.6, 0.8]', overrides=FIXED_DATA).cells())
    for name in ("ssl-ms1-specaugment-all-frozen-linear-freq_stack-s0", "random-frozen-linear-freq_stack-s0"):
        assert swept[name].cell_id == plain[name].cell_id
    assert "ssl-mae-frozen-linear-freq_stack-s0" not in swept  # mae cells now carry their mask_ratio


def test_example_config_ids_are_those_before_setting_axes(tmp_path):
    """Every cell id of configs/mask_*.toml whose results did not change (not random:<preset>, not
    fine-tuning: CHANGED_IDS) as the code before setting axes computed it (data "/")."""
    expected = {"mask_strength.toml": (115, "0b3a7b73de047071"), "mask_kind.toml": (48, "57462f976e0a7a34")}
    for name, (count, digest) in expected.items():
        cells = SweepSpec.load(ROOT / "configs" / name, FIXED_DATA).cells()
        ids = sorted(c.cell_id for c in cells if c.encoder != "random" and c.probe != "finetune")
        assert (len(ids), hashlib.sha256(",".join(ids).encode()).hexdigest()[:16]) == (count, digest), name


def test_fine_tuning_axis_expands_finetune_cells_only(tmp_path):
    base = load(tmp_path, axes="").cells()
    spec = load(tmp_path, axes='"probe.epochs" = [1, 3]', drop=("probe.epochs",))
    cells = spec.cells()
    tuned = [c for c in cells if "probe_epochs" in dict(c.axes)]
    assert {c.probe for c in tuned} == {"finetune"} and len(cells) == len(base) + len(tuned) // 2
    assert {c.cell_id for c in cells if c.probe != "finetune"} == {c.cell_id for c in base if c.probe != "finetune"}
    assert {spec.probe_config(c).epochs for c in tuned} == {1, 3}


def test_pretraining_axes_reach_the_baselines_that_use_them(tmp_path):
    axes = '"pretrain.preset" = ["tiny", "small"]\n"pretrain.epochs" = [1, 2]'
    spec = load(tmp_path, axes=axes, drop=("pretrain.preset", "pretrain.epochs"))
    cells = spec.cells()
    random = [c for c in cells if c.encoder == "random"]
    assert {spec.encoder_source(c) for c in random} == {"random:tiny", "random:small"}
    assert all("pretrain_epochs" not in dict(c.axes) for c in random)  # epochs: no pretraining to run
    assert all(not c.axes for c in cells if c.encoder == "handcrafted")
    ssl = [c for c in cells if c.encoder == "ssl"]
    assert {(spec.pretrain_config(c).preset, spec.pretrain_config(c).epochs) for c in ssl} == {
        (p, e) for p in ("tiny", "small") for e in (1, 2)
    }
    assert len({c.encoder_key for c in ssl}) == 2 * 4  # one pretraining per (method, preset, epochs)
    assert len({c.encoder_key for c in random}) == 2  # random:tiny and random:small
    front = load(tmp_path, axes='"pretrain.sample_rate" = [8000, 16000]')
    hand = [c for c in front.cells() if c.encoder == "handcrafted"]
    assert {front.probe_config(c).sample_rate for c in hand} == {8000, 16000}


def test_patch_size_axis_reaches_the_random_baselines(tmp_path):
    spec = load(tmp_path, axes='"pretrain.patch_size" = [8, 16]', methods='["mae"]')
    cells = spec.cells()
    ssl, random = ([c for c in cells if c.encoder == e] for e in ("ssl", "random"))
    assert len(ssl) == len(random) == 2 * 3  # 2 patch sizes x 3 (freeze, probe) pairs
    both = {(8, 8), (16, 16)}  # (the cell's axis value, the patch size its encoder is built with)
    assert {(dict(c.axes)["pretrain_patch_size"], spec.pretrain_config(c).patch_size) for c in ssl} == both
    assert {(dict(c.axes)["pretrain_patch_size"], spec.probe_config(c).patch_size) for c in random} == both
    assert len({c.encoder_key for c in ssl}) == len({c.encoder_key for c in random}) == 2
    assert all(not c.axes and spec.probe_config(c).patch_size is None for c in cells if c.encoder == "handcrafted")
    # the masked methods' grid for the random cells: a stride axis expands those cells only
    strided = load(
        tmp_path, axes='"probe.patch_stride" = [5, 8]', methods="['mae']", overrides=["pretrain.patch_size=8"]
    )
    by_encoder = {e: [c for c in strided.cells() if c.encoder == e] for e in ("ssl", "random")}
    assert len(by_encoder["ssl"]) == 3 and all(strided.probe_config(c).patch_stride is None for c in by_encoder["ssl"])
    grids = {(strided.probe_config(c).patch_size, strided.probe_config(c).patch_stride) for c in by_encoder["random"]}
    assert grids == {(8, 5), (8, 8)} and len(by_encoder["random"]) == 2 * 3


def test_spellings_of_an_axis_are_one_axis(tmp_path):
    quoted = {c.cell_id for c in load(tmp_path, axes='"pretrain.mask_ratio" = [0.6, 0.8]').cells()}
    nested = {c.cell_id for c in load(tmp_path, axes="pretrain.mask_ratio = [0.6, 0.8]").cells()}
    flag = {c.cell_id for c in load(tmp_path, axes="", overrides=["grid.pretrain.mask_ratio=[0.6,0.8]"]).cells()}
    assert quoted == nested == flag
    bare = {c.cell_id for c in load(tmp_path, axes="mask_strength = [0.5, 1]").cells()}
    dotted = {c.cell_id for c in load(tmp_path, axes='"pretrain.mask_strength" = [0.5, 1.0]').cells()}
    assert bare == dotted


def test_method_defaults_to_pretrainings_default_whatever_is_swept(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text(BASE.format(out=tmp_path, data="/", methods='["mae"]', axes='"pretrain.lr" = [1e-3, 1e-4]'))
    path.write_text(path.read_text().replace('method = ["mae"]\n', ""))
    assert {c.method for c in SweepSpec.load(path).cells() if c.encoder == "ssl"} == {"mae"}
    with pytest.raises(ConfigError, match=r'add "reconstruct" to grid\.method'):
        SweepSpec.load(path, ["grid.mask_strength=[0.5]"])


@pytest.mark.parametrize(
    "overrides, needle",
    [
        (["grid.pretrain.epochz=[1]"], 'grid."pretrain.epochz" is not a setting; valid keys of [pretrain]'),
        (["grid.pretrain.seed=[1]"], 'grid."pretrain.seed" is set by the sweep: remove it and use grid.seed'),
        (["grid.probe.layer=[1, 2]"], "cannot be swept: its store column would be 'layer'"),
        (["grid.pretrain.epochs=[1, 2]"], 'grid."pretrain.epochs" and pretrain.epochs both set epochs'),
        (["grid.pretrain.views=[2, 4]"], 'add "teacher" to grid.method'),
        (["grid.pretrain.mask_strength=[0.5]", "grid.mask_strength=[1.0]"], "are the same axis"),
        (["grid.colour.hue=[1]"], "grid.colour.hue is not a grid axis"),
        (["grid.pretrain.mask_ratio=[0.6, 1.5]"], 'grid."pretrain.mask_ratio" = 1.5 (mae cells): --mask-ratio 1.5'),
        (
            ["grid.pretrain.precision=['fp32', 'fp64']"],
            """grid."pretrain.precision" = 'fp64' (mae cells): --precision""",
        ),
        (["grid.probe.max_clips_per_group=[]"], 'grid."probe.max_clips_per_group" is empty'),
    ],
)
def test_axis_mistakes_name_the_key_and_the_fix(tmp_path, overrides, needle):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, axes="", overrides=overrides)
    assert needle in str(err.value)


def test_unknown_preset_is_refused_before_work(tmp_path):
    with pytest.raises(ConfigError, match=r"grid\.\"pretrain\.preset\" 'huge' is not a preset: use one of tiny"):
        load(tmp_path, axes='"pretrain.preset" = ["tiny", "huge"]', drop=("pretrain.preset",))


def test_dry_run_lists_the_axes_and_refuses_a_bad_value(tmp_path):
    path = tmp_path / "spec.toml"
    data = tmp_path / "data"
    data.mkdir()
    path.write_text(BASE.format(out=tmp_path / "out", data=data, methods='["mae", "reconstruct"]', axes=AXES))
    ok = CliRunner().invoke(app, ["benchmarks", "run", str(path), "--dry-run"])
    assert ok.exit_code == 0, ok.output
    assert "  axis mask_strength = 0.5, 1: 12 cells (ssl reconstruct)" in ok.output
    assert '  axis "pretrain.mask_ratio" = 0.6, 0.8 (column mask_ratio): 12 cells (ssl mae)' in ok.output
    assert "(column max_clips_per_group): 32 cells (handcrafted, random, ssl mae, ssl reconstruct)" in ok.output
    assert "pretrainings: 4 distinct" in ok.output
    bad = CliRunner().invoke(
        app, ["benchmarks", "run", str(path), "--dry-run", "--set", "grid.pretrain.mask_ratio=[2]"]
    )
    assert bad.exit_code == 1 and isinstance(bad.exception, SystemExit)
    assert len(bad.output.strip().splitlines()) == 1 and bad.output.startswith('error: grid."pretrain.mask_ratio" = 2')
    assert not (tmp_path / "out").exists()


def test_plan_counts_each_pretrainings_own_epochs(tmp_path, monkeypatch):
    from mosquito_ssl.benchmarks import plan as plans
    from mosquito_ssl.benchmarks.plan import make_plan

    monkeypatch.setattr(plans, "count_clips", lambda *a, **k: 10)  # data "/": never walk the disk

    spec = load(tmp_path, axes='"pretrain.epochs" = [1, 3]', drop=("pretrain.epochs",))
    cells = spec.cells()
    # one finished pretraining (e.g. shared with an earlier run's cells) is reused, not counted
    first = next(c for c in cells if c.encoder == "ssl")
    runs.mark_done(spec.pretrain_config(first).run_dir())
    plan = make_plan(spec, cells, set(), (0, 1), tmp_path / "s.sqlite")
    assert "4 distinct (settings, seed) shared by" in plan.format() and "; to run 3" in plan.format()
    left = 80 - 10 * spec.pretrain_config(first).epochs  # 4 pretrainings of 1 or 3 epochs: 80 clip-passes
    assert f"3 pretrainings x 1 to 3 epochs x 10 clips = {left} clip-passes" in plan.format()


def test_shards_keep_each_swept_pretraining_whole(tmp_path):
    from mosquito_ssl.benchmarks.plan import select_shard

    spec = load(tmp_path, axes=AXES + '\n"pretrain.preset" = ["tiny", "small"]', drop=("pretrain.preset",))
    cells = spec.cells()
    ssl = [c for c in cells if c.encoder == "ssl"]
    # a pretraining per (method, its own setting, preset): the axis values are in encoder_key
    assert len({c.encoder_key for c in ssl}) == 2 * 2 * 2
    assert len({spec.pretrain_config(c).run_dir() for c in ssl}) == 2 * 2 * 2
    shards = [select_shard(cells, (i, 3)) for i in range(3)]
    assert sorted(c.cell_id for s in shards for c in s) == sorted(c.cell_id for c in cells)
    owner = {c.encoder_key: i for i, s in enumerate(shards) for c in s}
    assert all(owner[c.encoder_key] == i for i, s in enumerate(shards) for c in s)
