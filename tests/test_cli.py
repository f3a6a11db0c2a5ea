from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ml.cli import build_parser, main, run_step
from ml.core.errors import ConfigError


def test_help_lists_every_registered_step(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for step in ("ingest", "validate", "preprocess"):
        assert step in out


def test_help_is_fast_because_heavy_libraries_load_lazily(repo_root: Path) -> None:
    code = (
        "import sys; from ml.cli import build_parser; build_parser(); "
        "heavy = [m for m in ('torch', 'mlflow', 'great_expectations', 'airflow') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_bad_override_exits_with_config_error_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["preprocess", "intent", "--params", str(tmp_path / "p.yaml"), "--set", "seed=x"])
    assert code == ConfigError.exit_code
    assert "seed" in capsys.readouterr().err


def test_run_step_raises_instead_of_exiting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        run_step(["preprocess", "intent", "--params", str(tmp_path / "p.yaml"), "--set", "seed=x"])


def test_family_steps_require_a_model(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["preprocess"])
