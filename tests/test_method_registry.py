"""The method registry (``model/methods.py``): one entry per method, reconstruct included.

Each method rebuilds from its saved ``ssl_config.json``; settings of another method are refused
for every method; no source line outside the registry compares a method name.
"""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest
import torch

from mosquito_ssl.data.features import FeatureSettings
from mosquito_ssl.errors import ConfigError
from mosquito_ssl.model import methods
from mosquito_ssl.model.encoder import build_encoder

SRC = Path(methods.__file__).resolve().parents[1]


@pytest.mark.parametrize("method", list(methods.METHODS))
def test_every_method_rebuilds_from_its_ssl_config(tmp_path, method):
    torch.manual_seed(0)
    model = methods.build_ssl_model(method, build_encoder("tiny"), {})
    model.save(tmp_path, FeatureSettings())
    entry, _ = methods.read_ssl_config(tmp_path)
    assert entry.name == method
    rebuilt = methods.rebuild(build_encoder("tiny", seed=1), json.loads((tmp_path / "ssl_config.json").read_text()))
    rebuilt.load_state_dict(torch.load(tmp_path / "model.pth", weights_only=True))
    assert type(rebuilt) is type(model) and rebuilt.settings == model.settings
    x = torch.randn(2, 100, 128)
    model.eval(), rebuilt.eval()
    with torch.no_grad():
        assert torch.equal(model(input_values=x).loss, rebuilt(input_values=x).loss)


def test_old_ssl_configs_still_rebuild():
    # reconstruct's first format had no "method" key; byol's mixing weight was called "mixup"
    reconstruct = methods.rebuild(build_encoder("tiny"), {"mask_strength": 0.5, "loss_on": "masked", "proj_dim": 8})
    assert reconstruct.method == "reconstruct" and reconstruct.settings.mask_strength == 0.5
    byol = methods.rebuild(build_encoder("tiny"), {"method": "byol", "mixup": 0.1})
    assert byol.settings.mixup_ratio == 0.1


@pytest.mark.parametrize("method", list(methods.METHODS))
def test_settings_of_another_method_are_refused_for_every_method(method):
    foreign = next(f for f in methods.METHOD_FIELDS if method not in methods.methods_with(f))
    with pytest.raises(ConfigError, match=f"not of --method {method}"):
        methods.method_settings(method, {foreign: methods.setting_field(foreign).default or 1})


def test_shared_settings_mean_one_thing():
    """A setting of several methods has one help text and one type in each of them."""
    for name in methods.METHOD_FIELDS:
        declarations = [
            next(f for f in dataclasses.fields(methods.METHODS[m].settings) if f.name == name)
            for m in methods.methods_with(name)
        ]
        assert len({d.metadata["help"] for d in declarations}) == 1, name
        assert len({str(d.type) for d in declarations}) == 1, name


def _method_name_comparisons(path: Path) -> list[str]:
    """``x == "mae"``, ``"byol" in (...)`` and the like: a comparison with a method name as a constant."""
    names = set(methods.METHODS)
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Compare):
            parts = [node.left, *node.comparators]
            consts = [c for p in parts for c in ast.walk(p) if isinstance(c, ast.Constant)]
            if any(isinstance(c.value, str) and c.value in names for c in consts):
                found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    return found


def test_no_source_line_outside_the_registry_compares_a_method_name():
    registry = {SRC / "model" / "methods.py", SRC / "model" / "method_settings.py"}
    found = [
        hit for path in sorted(SRC.rglob("*.py")) if path not in registry for hit in _method_name_comparisons(path)
    ]
    assert not found, f"method names compared outside model/methods.py: {found}"


def test_the_comparison_finder_finds_comparisons(tmp_path):
    probe = SRC / "_probe_for_test.py"
    try:
        probe.write_text('if cfg.method == "reconstruct":\n    pass\nok = "mae" in ("a",)\n')
        assert len(_method_name_comparisons(probe)) == 2
    finally:
        probe.unlink()
