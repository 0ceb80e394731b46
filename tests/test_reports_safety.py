"""Nothing silently wrong: names from a crafted store never leave ``--out``; a bad ``--reference``
is an error, a partial one a warning. Real ``mosquito-ssl reports build`` subprocesses included.

Decision under test: metric names such as ``../../escape`` or an absolute path still give a
report, under sanitised file names (``files.file_stem``); a write that would land outside
``--out`` anyway (``tables/`` linked elsewhere) is one ``error:`` line and nothing written there.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from mosquito_ssl.errors import ConfigError, StoreError
from mosquito_ssl.reports import files
from mosquito_ssl.reports.build import ReportConfig, analyse, build_report, prepare
from reports_fixtures import make_store


def crafted_store(root: Path, names) -> Path:
    """A small store whose balanced_accuracy rows are copied under each of ``names`` as metric."""
    store = make_store(root, seeds=(0, 1, 2), baselines=("random",), layerwise=False, artifacts=False)
    with sqlite3.connect(store) as con:
        columns = [r[1] for r in con.execute("PRAGMA table_info(results)")]
        picked = ", ".join("?" if c == "metric" else c for c in columns)
        for name in names:
            con.execute(f"INSERT INTO results SELECT {picked} FROM results WHERE metric = 'balanced_accuracy'", (name,))
    return store


def every_file(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() or p.is_symlink()}


@pytest.fixture
def crafted(tmp_path):
    """(parent temp dir, store, out, the absolute-path metric); the store sits two folders deep
    so that ``../../escape`` from ``out/tables`` would land inside the parent, where we look."""
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    absolute = str(tmp_path / "elsewhere" / "abs")
    return tmp_path, crafted_store(work, ["../../escape", absolute]), work / "out", absolute


def command() -> list[str]:
    exe = shutil.which("mosquito-ssl")
    return [exe] if exe else [sys.executable, "-m", "mosquito_ssl"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    env.pop("MOSQUITO_SSL_DEBUG", None)
    return subprocess.run([*command(), "reports", "build", *args], capture_output=True, text=True, timeout=300, env=env)


def lines(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


def test_file_stem_is_the_one_sanitiser():
    assert files.file_stem("balanced_accuracy") == "balanced_accuracy"
    assert files.file_stem("precision:aedes") == "precision_aedes"
    for name in ("../../escape", "/tmp/x/abs", "Aedes aegypti", "", "-rf", "..", "x" * 300, "a\\b", "c:\\d"):
        stem = files.file_stem(name)
        assert re.fullmatch(r"[a-z0-9][a-z0-9_-]*-[0-9a-f]{8}|x-[0-9a-f]{8}", stem), (name, stem)
        assert len(stem) <= files.MAX_STEM + 9
    assert files.file_stem("Aedes") != files.file_stem("aedes")  # lossy names keep apart
    assert files.file_stem("../../escape").startswith("escape-")


def test_write_refuses_paths_outside_the_folder(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    for name in ("../escape.md", str(tmp_path / "abs.md"), "sub/../../x.md"):
        with pytest.raises(StoreError, match="refusing to write"):
            files.write_text(folder, name, "x", source=name)
    assert every_file(tmp_path) == set()
    assert files.write_text(folder, "ok.md", "x") == folder / "ok.md"


def test_crafted_metric_names_stay_inside_out(crafted):
    parent, store, out, absolute = crafted
    before = every_file(parent)
    cfg = ReportConfig(store=store, out=out, metrics=("../../escape", absolute))
    build_report(cfg)
    new = every_file(parent) - before
    assert new and all(p.is_relative_to(out) for p in new), sorted(map(str, new))
    assert not (parent / "elsewhere").exists() and not list(parent.glob("escape*"))
    stems = {p.stem for p in (out / "tables").iterdir()}
    assert {files.file_stem("../../escape"), files.file_stem(absolute)} <= stems


def test_tables_linked_outside_out_is_refused(crafted):
    parent, store, out, _ = crafted
    outside = parent / "outside"
    outside.mkdir()
    out.mkdir()
    (out / "tables").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ConfigError, match=r"--out .*outside --out"):
        build_report(ReportConfig(store=store, out=out, metrics=("balanced_accuracy",)))
    assert not any(outside.iterdir())


def test_reference_typo_is_an_error_naming_the_values(tmp_path):
    store = crafted_store(tmp_path, [])
    cfg = ReportConfig(store=store, out=tmp_path / "r", reference="encoder=nonexistent")
    with pytest.raises(ConfigError) as err:
        build_report(cfg)
    message = str(err.value)
    assert message.startswith("--reference encoder=nonexistent:") and "random, ssl" in message
    assert not (tmp_path / "r").exists()
    both = ReportConfig(store=store, reference="encoder=random,mask_strength=0.5")  # exist, never together
    with pytest.raises(ConfigError, match=r"together; the \(encoder, mask_strength\) values are: \(random, —\)"):
        analyse(prepare(both), both)


def test_partial_reference_warns_once(tmp_path):
    store = crafted_store(tmp_path, [])
    warned: list[str] = []
    cfg = ReportConfig(store=store, metrics=("balanced_accuracy",), reference="encoder=random,freeze=frozen")
    prep = analyse(prepare(cfg), cfg, warn=warned.append)
    assert len(warned) == 1 and "freeze=full" in warned[0] and "2 of 3 tables" in warned[0]
    assert set(prep.stats["freeze"]) == {"frozen"}
    default: list[str] = []
    cfg = ReportConfig(store=store, metrics=("balanced_accuracy",))
    analyse(prepare(cfg), cfg, warn=default.append)
    assert default == []


def test_default_reference_absent_is_a_warning_not_an_error(tmp_path):
    store = make_store(tmp_path, baselines=("handcrafted",), layerwise=False, artifacts=False)
    warned: list[str] = []
    build_report(ReportConfig(store=store, out=tmp_path / "r", metrics=("macro_f1",)), warn=warned.append)
    assert len(warned) == 1 and warned[0].startswith("--reference encoder=random (the default)")
    assert "handcrafted, ssl" in warned[0]


@pytest.mark.slow
def test_cli_traversal_writes_nothing_outside_out(crafted):
    parent, store, out, absolute = crafted
    before = every_file(parent)
    proc = run_cli(str(store), "-m", "../../escape", "-m", absolute, "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and not lines(proc.stderr, "error:") and not lines(proc.stderr, "warning:")
    new = every_file(parent) - before
    assert new and all(p.is_relative_to(out) for p in new), sorted(map(str, new))
    assert not (parent / "elsewhere").exists()


@pytest.mark.slow
def test_cli_linked_tables_is_one_error_line(crafted):
    parent, store, out, _ = crafted
    (parent / "outside").mkdir()
    out.mkdir()
    (out / "tables").symlink_to(parent / "outside", target_is_directory=True)
    proc = run_cli(str(store), "-m", "../../escape", "--out", str(out))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    errors = lines(proc.stderr, "error:")
    assert len(errors) == 1 and "--out" in errors[0], proc.stderr
    assert not any((parent / "outside").iterdir())


@pytest.mark.slow
def test_cli_reference_typo_and_partial_match(tmp_path):
    store = crafted_store(tmp_path, [])
    bad = run_cli(str(store), "--reference", "encoder=nonexistent", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    errors = lines(bad.stderr, "error:")
    assert len(errors) == 1 and "encoder=nonexistent" in errors[0] and "random, ssl" in errors[0], bad.stderr
    assert not (tmp_path / "bad").exists()
    part = run_cli(
        str(store), "--reference", "encoder=random,freeze=frozen", "-m", "macro_f1", "--out", str(tmp_path / "p")
    )
    assert part.returncode == 0 and "Traceback" not in part.stderr, part.stderr[-2000:]
    warnings = lines(part.stderr, "warning:")
    assert len(warnings) == 1 and not lines(part.stderr, "error:"), part.stderr
    assert "freeze=frozen" in warnings[0] and "full, partial:2" in warnings[0]
    assert part.stdout.startswith("done: ")
