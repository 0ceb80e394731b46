"""Sweep specs: grid expansion, the combination rule, baselines, stable cell ids, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from mosquito_ssl.benchmarks.spec import SweepSpec
from mosquito_ssl.errors import ConfigError

SPEC = """
[sweep]
name = "t"
out = "{out}"
pretrain_data = "{data}"
probe_data = "{data}"
baselines = {baselines}

[grid]
method = ["reconstruct"]
mask_strength = [0.5, 1.0]
freeze = ["frozen", "partial:1", "full"]
probe = ["linear", "finetune"]
seed = [0, 1]

[pretrain]
preset = "tiny"
epochs = 1
batch_size = 8
grad_accum = 1
workers = 0
patience = 100

[probe]
epochs = 1
batch_size = 8
"""


def write_spec(tmp_path: Path, data: Path, text: str = SPEC, baselines: str = "[]", name: str = "spec.toml") -> Path:
    """A spec file under ``tmp_path`` whose sweep writes to ``tmp_path / 'out'``."""
    path = tmp_path / name
    path.write_text(text.format(out=tmp_path / "out", data=data, baselines=baselines))
    return path


@pytest.fixture
def data(tmp_path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()  # validation only checks that the path exists; nothing is read here
    return folder


def test_grid_counts_baseline_and_combination_rule(tmp_path, data):
    cells = SweepSpec.load(write_spec(tmp_path, data, baselines='["handcrafted"]')).cells()
    by = {}
    for c in cells:
        by.setdefault(c.encoder, []).append(c)
    # per (mask strength, seed): frozen x {linear, finetune} + partial:1 x finetune + full x finetune
    assert len(by["ssl"]) == 2 * 2 * 4
    assert len(by["random"]) == 2 * 4  # the no-pretraining baseline under every freeze/probe setting
    assert {(c.freeze, c.probe) for c in by["random"]} == {(c.freeze, c.probe) for c in by["ssl"]}
    assert {(c.freeze, c.probe, c.pooling) for c in by["handcrafted"]} == {("frozen", "linear", "none")}
    assert all(c.probe == "finetune" for c in cells if c.freeze != "frozen")
    assert all(c.mask_strength is None and c.loss_on is None for c in cells if c.encoder != "ssl")
    assert len({c.cell_id for c in cells}) == len(cells)
    # one pretraining per (pretraining settings, seed)
    assert len({c.encoder_key for c in by["ssl"]}) == 4


def test_random_baseline_always_included(tmp_path, data):
    text = SPEC.replace('probe = ["linear", "finetune"]', 'probe = ["mlp"]').replace(
        'freeze = ["frozen", "partial:1", "full"]', 'freeze = ["frozen"]'
    )
    cells = SweepSpec.load(write_spec(tmp_path, data, text)).cells()
    assert sorted({c.encoder for c in cells}) == ["random", "ssl"]
    assert sum(c.encoder == "random" for c in cells) == 2  # one per seed


def test_cell_ids_are_stable_and_change_with_settings(tmp_path, data):
    path = write_spec(tmp_path, data)
    ids = {c.name: c.cell_id for c in SweepSpec.load(path).cells()}
    assert ids == {c.name: c.cell_id for c in SweepSpec.load(path).cells()}
    longer = {c.cell_id: c for c in SweepSpec.load(path, ["pretrain.epochs=2"]).cells()}
    changed = [c for c in longer.values() if c.cell_id not in ids.values()]
    # pretraining settings change every ssl cell and no baseline cell
    assert {c.encoder for c in changed} == {"ssl"} and len(changed) == 16
    probe_changed = SweepSpec.load(path, {"probe.max_clips_per_group": 3}).cells()
    assert not {c.cell_id for c in probe_changed} & set(ids.values())
    # a fine-tuning setting changes the fine-tuning cells only
    tuned = [c for c in SweepSpec.load(path, {"probe.epochs": 3}).cells() if c.cell_id not in ids.values()]
    assert tuned and {c.probe for c in tuned} == {"finetune"}
    other_data = tmp_path / "data2"
    other_data.mkdir()
    moved = SweepSpec.load(path, [f"sweep.probe_data={other_data}"]).cells()
    assert not {c.cell_id for c in moved} & set(ids.values())
    renamed = SweepSpec.load(path, ["sweep.name=other", f"sweep.out={tmp_path / 'elsewhere'}"]).cells()
    assert {c.cell_id for c in renamed} == set(ids.values())  # where and under which name: not science


def test_overrides_change_the_grid(tmp_path, data):
    spec = SweepSpec.load(
        write_spec(tmp_path, data), ["grid.seed=[0,1,2]", "grid.freeze=frozen", "grid.probe=linear", "pretrain.lr=0.01"]
    )
    cells = spec.cells()
    assert len(cells) == 2 * 3 + 3 and spec.pretrain["lr"] == 0.01
    assert spec.pretrain_config(cells[0]).lr == 0.01


@pytest.mark.parametrize(
    "override, needle",
    [
        ("pretrain.epochz=3", "pretrain.epochz is not a setting"),
        ("probe.colour=1", "probe.colour is not a setting"),
        ("pretrain.seed=3", "use grid.seed"),
        ("probe.freeze=full", "use grid.freeze"),
        ("grid.freeze=['frozen', 'partial:x']", "grid.freeze 'partial:x' is not valid"),
        ("grid.freeze=['partial:4']", "use partial:0 .. partial:3"),  # the tiny preset has 3 blocks
        ("grid.freeze=[1]", "grid.freeze 1 is not valid"),
        ("grid.probe=['svm']", "'svm' is not a probe"),
        ("grid.masking=[1]", "grid.masking is not a grid axis"),
        ("grid.seed=[]", "grid.seed is empty"),
        ("sweep.pretrain_data=/no/such/folder", "sweep.pretrain_data"),
        ("sweep.baselines=['imagenet']", "'imagenet' is not a baseline"),
        ("sweep.baselines=['audioset']", "sweep.audioset is missing"),
        ("grid.loss_on=['everything']", "loss-on"),
    ],
)
def test_validation_names_the_key_and_the_fix(tmp_path, data, override, needle):
    with pytest.raises(ConfigError) as err:
        SweepSpec.load(write_spec(tmp_path, data), [override])
    assert needle in str(err.value)


def test_freeze_values_follow_the_one_freeze_vocabulary(tmp_path, data):
    """A sweep accepts what probe and pretraining accept (partial:0, none) and stores it canonically."""
    spec = SweepSpec.load(write_spec(tmp_path, data), ["grid.freeze=['frozen', 'partial:0', 'none', 'full']"])
    assert spec.grid["freeze"] == ("frozen", "partial:0", "full")  # none is full: one cell, not two
    assert {c.freeze for c in spec.cells()} == {"frozen", "partial:0", "full"}


def test_partial_freeze_needs_finetune(tmp_path, data):
    with pytest.raises(ConfigError, match="pairs only with probe 'finetune'"):
        SweepSpec.load(write_spec(tmp_path, data), ["grid.probe=['linear']"])


def test_bad_set_syntax_and_unknown_table(tmp_path, data):
    with pytest.raises(ConfigError, match=r"table\.key=value"):
        SweepSpec.load(write_spec(tmp_path, data), ["epochs=3"])
    bad = write_spec(tmp_path, data, SPEC + "\n[trainer]\nx = 1\n", name="bad.toml")
    with pytest.raises(ConfigError, match="unknown table"):
        SweepSpec.load(bad)


def test_example_configs_parse(tmp_path, data):
    configs = Path(__file__).resolve().parents[1] / "configs"
    packaged = Path(__file__).resolve().parents[1] / "src" / "mosquito_ssl" / "benchmarks"
    for path in sorted([*configs.glob("*.toml"), *packaged.glob("*.toml")]):
        overrides = {"sweep.pretrain_data": str(data), "sweep.probe_data": str(data), "sweep.audioset": str(data)}
        cells = SweepSpec.load(path, overrides).cells()
        assert any(c.encoder == "random" for c in cells), path


def test_front_end_and_protocol_reach_the_cells(tmp_path, data):
    text = SPEC.replace("[pretrain]\n", '[pretrain]\nsample_rate = 8000\nnormalize = "dataset"\n').replace(
        "[probe]\n", '[probe]\nmax_clips_per_group = 5\nmin_groups_per_class = 2\nexclude_classes = ["noise"]\n'
    )
    spec = SweepSpec.load(write_spec(tmp_path, data, text, baselines='["logmel"]'))
    cells = spec.cells()
    assert {c.encoder for c in cells} == {"ssl", "random", "logmel"}
    for cell in cells:
        probe = spec.probe_config(cell)
        assert (probe.max_clips_per_group, probe.min_groups_per_class) == (5, 2)
        assert tuple(probe.exclude_classes) == ("noise",)
        if cell.encoder == "ssl":  # the checkpoint carries its front end
            assert probe.sample_rate is None and spec.pretrain_config(cell).features.sample_rate == 8000
        else:  # the baselines see the front end the ssl cells are pretrained with
            assert (probe.sample_rate, probe.normalize) == (8000, "dataset")
    assert {c.pooling for c in cells if c.encoder == "logmel"} == {"none"}
