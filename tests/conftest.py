"""Shared test fixtures: offline hub, a private feature cache, tiny synthetic data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own feature cache so tests never see each other's artifacts."""
    monkeypatch.setenv("MOSQUITO_SSL_CACHE", str(tmp_path_factory.mktemp("cache")))


def shared_data(name: str) -> Path:
    """Path to a folder of ../shared/data, skipping the test when it is absent."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """A tiny labelled synthetic set: 2 species x 3 recordings x 2 clips (modules may define their own)."""
    from mosquito_ssl.data.synthetic import synthesize

    return synthesize(
        tmp_path_factory.mktemp("synth"),
        species=["aedes_aegypti", "culex_pipiens"],
        recordings_per_species=3,
        clips_per_recording=2,
    )
