"""The evaluation protocol: class filters, per-group cap, too-few-groups classes left out and logged."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pytest

from mosquito_ssl.data.items import Dataset, Item
from mosquito_ssl.data.protocol import Protocol, apply_protocol
from mosquito_ssl.errors import ConfigError, DataError


def _dataset() -> Dataset:
    """a: 4 recordings x 10 clips; b: 3 x 2; c: 1 x 5 (one recording only)."""
    items = []
    for label, groups, clips in (("a", 4, 10), ("b", 3, 2), ("c", 1, 5)):
        for g in range(groups):
            items += [Item(f"{label}{g}.wav", label, f"{label}{g}", offset=float(k)) for k in range(clips)]
    return Dataset(items, "csv", Path("."), source="field.csv")


def test_no_option_changes_nothing():
    data = _dataset()
    kept, report = apply_protocol(data, Protocol())
    assert kept.items == data.items
    assert report["used_classes"] == ["a", "b", "c"] and report["left_out"] == {}


def test_class_filters():
    kept, report = apply_protocol(_dataset(), Protocol(classes=("a", "c")))
    assert {i.label for i in kept.items} == {"a", "c"} and report["used_classes"] == ["a", "c"]
    kept, _ = apply_protocol(_dataset(), Protocol(exclude_classes=("a",)))
    assert {i.label for i in kept.items} == {"b", "c"}
    with pytest.raises(ConfigError, match="--classes names z"):
        apply_protocol(_dataset(), Protocol(classes=("a", "z")))
    with pytest.raises(DataError, match="a probe needs two"):
        apply_protocol(_dataset(), Protocol(classes=("a",)))


def test_classes_with_too_few_groups_are_left_out_with_one_logged_line(caplog):
    with caplog.at_level(logging.INFO, logger="mosquito_ssl.data.protocol"):
        kept, report = apply_protocol(_dataset(), Protocol(min_groups_per_class=3))
    assert {i.label for i in kept.items} == {"a", "b"}
    assert report["left_out"] == {"c": 1} and report["used_classes"] == ["a", "b"]
    lines = [r.getMessage() for r in caplog.records if "--min-groups-per-class" in r.getMessage()]
    assert len(lines) == 1 and "c (1)" in lines[0]


def test_cap_keeps_at_most_n_clips_per_group_seeded_and_in_order():
    data = _dataset()
    kept, report = apply_protocol(data, Protocol(max_clips_per_group=3, seed=0))
    per_group = Counter(i.group for i in kept.items)
    assert max(per_group.values()) == 3 and per_group["b0"] == 2  # short groups keep all
    assert report["clips"] == len(kept.items) == 4 * 3 + 3 * 2 + 3
    order = [data.items.index(i) for i in kept.items]
    assert order == sorted(order)
    again, _ = apply_protocol(data, Protocol(max_clips_per_group=3, seed=0))
    other, _ = apply_protocol(data, Protocol(max_clips_per_group=3, seed=1))
    assert again.items == kept.items and other.items != kept.items


def test_clips_without_a_group_count_as_their_own_group():
    items = [Item(f"{c}{k}.wav", c) for c in "ab" for k in range(3)]
    kept, report = apply_protocol(
        Dataset(items, "flat", Path(".")), Protocol(min_groups_per_class=3, max_clips_per_group=1)
    )
    assert kept.items == items and report["left_out"] == {}


def test_bad_numbers_name_the_flag():
    with pytest.raises(ConfigError, match="--max-clips-per-group 0"):
        Protocol(max_clips_per_group=0)


def test_probe_run_records_the_protocol(tmp_path, caplog):
    """A too-small class that would stop the split is left out; config.json, metrics and the clip list show it."""
    import json

    from mosquito_ssl.data.synthetic import synthesize
    from mosquito_ssl.probe.config import ProbeConfig
    from mosquito_ssl.probe.run import run_probe

    data = synthesize(
        tmp_path / "synth", species=["aedes_aegypti", "culex_pipiens"], recordings_per_species=3, clips_per_recording=3
    )
    manifest = data / "manifest.csv"  # one recording of a third species: too few to split
    manifest.write_text(manifest.read_text() + "aedes_aegypti/rec00_00.wav,anopheles_gambiae,anopheles_gambiae/rec00\n")
    cfg = ProbeConfig(
        data=data, encoder="handcrafted", out=tmp_path / "runs", min_groups_per_class=3, max_clips_per_group=2
    )
    with caplog.at_level(logging.INFO):
        result = run_probe(cfg)
    protocol = result.metrics["protocol"]
    assert protocol["left_out"] == {"anopheles_gambiae": 1} and protocol["clips"] == 12
    assert result.metrics["classes"] == ["aedes_aegypti", "culex_pipiens"]
    saved = json.loads((result.run_dir / "config.json").read_text())
    assert saved["min_groups_per_class"] == 3 and saved["max_clips_per_group"] == 2
    assert ProbeConfig(data=data, encoder="handcrafted", out=tmp_path / "runs").run_dir() != result.run_dir


def test_report_header_states_the_classes_and_the_protocol(tmp_path):
    import json

    from mosquito_ssl.reports.load import protocol_summary

    for k, used in enumerate((["a", "b"], ["a", "b", "c"])):
        (tmp_path / f"r{k}").mkdir()
        protocol = {"used_classes": used, "left_out": {"d": 1}, "max_clips_per_group": 40, "classes": None}
        features = {"sample_rate": 8000, "num_mel_bins": 128, "normalize": "dataset"}
        (tmp_path / f"r{k}" / "metrics.json").write_text(json.dumps({"protocol": protocol, "features": features}))
    header = protocol_summary([str(tmp_path / "r0"), str(tmp_path / "r1"), str(tmp_path / "absent"), None])
    assert header == {
        "Classes": "a, b, c; left out: d (1 groups)",
        "Protocol": "max_clips_per_group=40",
        "Front end": "8000 Hz, 128 mel bins, dataset mean/std",
    }
    assert protocol_summary([str(tmp_path / "absent")]) == {}


def test_the_group_count_is_taken_after_the_cap():
    """Groups holding several classes (speakers, sites): the cap can leave a class in fewer groups."""
    items = [Item(f"s{g}_{c}.wav", c, f"s{g}") for g in range(4) for c in "ab"]  # 4 speakers, a and b each
    items += [Item(f"r{g}.wav", "c", f"r{g}") for g in range(3)]  # c: 3 recordings of its own
    kept, report = apply_protocol(
        Dataset(items, "csv", Path(".")), Protocol(max_clips_per_group=1, min_groups_per_class=3)
    )
    # one clip per speaker: a and b share 4 speakers, so one of them keeps 2 or fewer and is left out
    assert report["left_out"] and set(report["left_out"]) <= {"a", "b"} and "c" in report["used_classes"]
    for c in report["used_classes"]:
        assert len({i.group for i in kept.items if i.label == c}) >= 3


def test_class_lists_from_a_toml_file_or_a_flag_are_the_same(tmp_path):
    from mosquito_ssl.probe.config import ProbeConfig

    spellings = ("a, b", ["a", "b"], ("a", "b"))
    assert {ProbeConfig(data=tmp_path, classes=c, exclude_classes=c).classes for c in spellings} == {("a", "b")}
