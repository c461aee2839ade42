"""The flops command."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from ssprop_energy.cli import app
from ssprop_energy.cli.flops_cmd import human, parse_shape
from ssprop_energy.flops import count_flops
from ssprop_energy.models import build_model

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
    assert "saving at keep 0.2: backward 8" in result.output  # floor(0.2 * 20) = 4 of 20
    table = pd.read_csv(out)
    assert {"module", "forward", "backward", "selection"} <= set(table.columns)


def test_config_form_prints_each_schedule(tmp_path: Path) -> None:
    config = tmp_path / "m.yaml"
    config.write_text(
        "name: t\nmodel: {name: cnn, kwargs: {width: 20}}\n"
        "data: {name: digits, batch_size: 16}\ntrain: {epochs: 4}\n"
        "methods: [{name: dense}, {name: ssprop, keep: 0.2, interleave: true}]\n"
    )
    result = runner.invoke(app, ["flops", str(config)])
    assert result.exit_code == 0, result.output
    assert "16x1x8x8" in result.output
    assert "ssprop keep=0.2 interleave: mean keep 0.60 over 4 epochs" in result.output
    assert "(convolutions 40.0%)" in result.output


def test_bad_input_is_one_line() -> None:
    for args, message in [
        (["--model", "cnn", "--input-shape", "8x3x16x16"], "does not fit the model"),
        (["--model", "cnn", "--input-shape", "8xAx16"], "--input-shape"),
        (["--model", "cnn", "--input-shape", "8,,16"], "--input-shape"),
        (["--model", "cnn", "--input-shape", "8,0,16,16"], "--input-shape"),
        (["--model", "nope", "--input-shape", "1x1x8x8"], "unknown model"),
        (["--model", "cnn", "--input-shape", "1x1x8x8", "--keep", "1.5"], "keep"),
        ([], "--model"),
    ]:
        result = runner.invoke(app, ["flops", *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_table_counts_are_compact_and_totals_exact() -> None:
    assert [human(v) for v in (0, 999, 1000, 1_234_567, 71_421_263_872)] == [
        "0",
        "999",
        "1k",
        "1.23M",
        "71.4G",
    ]
    result = runner.invoke(app, ["flops", "--model", "cnn", "--input-shape", "2x1x8x8"])
    assert result.exit_code == 0, result.output
    report = count_flops(build_model("cnn"), (2, 1, 8, 8))
    assert f"= {report.total:,} FLOPs" in result.output


def test_input_shape_takes_x_or_commas() -> None:
    for text in ("8x3x32x32", "8,3,32,32", "8X3X32X32", "8, 3, 32, 32"):
        assert parse_shape(text) == (8, 3, 32, 32), text
    result = runner.invoke(app, ["flops", "--model", "cnn", "--input-shape", "2,1,8,8"])
    assert result.exit_code == 0, result.output
    assert f"= {count_flops(build_model('cnn'), (2, 1, 8, 8)).total:,} FLOPs" in result.output
