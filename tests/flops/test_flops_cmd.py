"""The flops command."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from ssprop_energy.cli import app

runner = CliRunner()


def test_model_and_shape_with_keep_and_csv(tmp_path: Path) -> None:
    out = tmp_path / "flops.csv"
    result = runner.invoke(
        app,
        [
            "flops",
            "--model",
            "cnn",
            "--input-shape",
            "8x1x16x16",
            "--keep",
            "0.2",
            "--csv",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "backward saving at keep 0.2" in result.output
    table = pd.read_csv(out)
    assert {"module", "forward", "backward", "selection"} <= set(table.columns)


def test_config_form(tmp_path: Path) -> None:
    config = tmp_path / "m.yaml"
    config.write_text("name: t\nmodel: {name: cnn}\ndata: {name: digits, batch_size: 16}\n")
    result = runner.invoke(app, ["flops", str(config)])
    assert result.exit_code == 0, result.output
    assert "16x1x8x8" in result.output


def test_bad_input_is_one_line() -> None:
    for args, message in [
        (["--model", "cnn", "--input-shape", "8x3x16x16"], "does not fit the model"),
        (["--model", "cnn", "--input-shape", "8xAx16"], "--input-shape"),
        (["--model", "nope", "--input-shape", "1x1x8x8"], "unknown model"),
        (["--model", "cnn", "--input-shape", "1x1x8x8", "--keep", "1.5"], "keep"),
        ([], "--model"),
    ]:
        result = runner.invoke(app, ["flops", *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and len(result.output.strip().splitlines()) == 1
