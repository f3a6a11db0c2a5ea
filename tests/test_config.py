from __future__ import annotations

from pathlib import Path

import pytest

from ml.core.config import Params, load_params
from ml.core.errors import ConfigError


def test_repo_params_file_is_valid_and_complete(repo_root: Path) -> None:
    params = load_params(repo_root / "params.yaml")
    # Every section of the model appears in params.yaml, so it documents every setting.
    import yaml

    raw = yaml.safe_load((repo_root / "params.yaml").read_text())
    assert set(raw) == set(Params.model_fields)
    assert params.ingest.source == "synthetic"


def test_dotted_overrides_are_typed_and_validated(tmp_path: Path) -> None:
    params = load_params(tmp_path / "absent.yaml", ["intent.train.epochs=2", "ingest.sample=300"])
    assert params.intent.train.epochs == 2 and params.ingest.sample == 300
    with pytest.raises(ConfigError, match=r"intent\.train\.epochs"):
        load_params(tmp_path / "absent.yaml", ["intent.train.epochs=0"])
    with pytest.raises(ConfigError, match="not of the form"):
        load_params(tmp_path / "absent.yaml", ["intent.train.epochs"])
    with pytest.raises(ConfigError, match="Extra inputs"):
        load_params(tmp_path / "absent.yaml", ["intent.train.epoch=2"])


def test_profile_overlay_merges_deeply(repo_root: Path) -> None:
    params = load_params(repo_root / "params.yaml", [f"@{repo_root / 'configs/bitext.yaml'}"])
    assert params.ingest.source == "intent_file"
    assert params.preprocess.intent.split.method == "stratified"
    # Untouched keys of a merged section keep their params.yaml values.
    assert params.preprocess.intent.split.test_fraction == 0.15


def test_bad_yaml_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("seed: [1,\n")
    with pytest.raises(ConfigError, match=r"params\.yaml: not valid YAML"):
        load_params(bad)


def test_digest_changes_with_params(tmp_path: Path) -> None:
    a = load_params(tmp_path / "none.yaml")
    b = load_params(tmp_path / "none.yaml", ["seed=1"])
    assert a.digest() != b.digest() and a.digest() == load_params(tmp_path / "none.yaml").digest()
