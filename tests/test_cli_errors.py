"""Broken manifests (every command reads them through ``layouts.read_table``) and unusable ``embed --out`` paths through the installed ``mosquito-ssl``:
exit 1, one ``error:`` line on stderr naming the file and the fix, no traceback, and (for
``--out``) no embedding computed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from procs import fails as _fails

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from mosquito_ssl.data.synthetic import synthesize

    return synthesize(
        tmp_path_factory.mktemp("synth"), species=["aedes_aegypti", "culex_pipiens"], recordings_per_species=1
    )


@pytest.mark.parametrize(
    ("content", "fix"),
    [
        (b'path,label\n"a.wav,x\n', "close every quote"),
        (b"path,label\n\xff.wav,x\n", "save the file as UTF-8"),
        (b"", "write a header row"),
    ],
    ids=["unclosed_quote", "not_utf8", "empty"],
)
def test_broken_manifest(tmp_path, content, fix):
    manifest = tmp_path / "data" / "manifest.csv"
    manifest.parent.mkdir()
    manifest.write_bytes(content)
    line = _fails("data", "inspect", manifest.parent, cache=tmp_path / "cache")
    assert line.startswith(f"error: {manifest}: ") and fix in line, line


def _unwritable(tmp_path: Path) -> Path:
    """A folder this process cannot create files in (root ignores permissions: /proc refuses it too)."""
    if os.geteuid() == 0:
        return Path("/proc")
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


@pytest.mark.parametrize("case", ["folder", "under_a_file", "unwritable"])
def test_embed_out_is_checked_before_any_embedding(synth, tmp_path, case):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "existing.npz").mkdir()
    out, expected = {
        "folder": (tmp_path / "existing.npz", "is a folder: give a file name inside it"),
        "under_a_file": (tmp_path / "a_file" / "e.npz", f"{tmp_path / 'a_file'} is a file, not a folder"),
        "unwritable": (_unwritable(tmp_path) / "e.npz", "cannot write in"),
    }[case]
    cache = tmp_path / "cache"
    line = _fails("embed", synth, "--encoder", "random:tiny", "--out", out, cache=cache)
    assert line.startswith(f"error: --out {out}") and expected in line, line
    assert not (cache / "embeddings").exists() and not (cache / "features").exists()  # nothing computed
