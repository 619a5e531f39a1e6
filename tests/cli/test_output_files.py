"""Files the command line writes: a bad output path is refused before the search and leaves nothing behind, and
written files get the permissions a plain write gives."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from ranum.cli import _write_atomically, app

runner = CliRunner(env={"COLUMNS": "200"})


def test_fix_refuses_a_folder_as_its_output_and_leaves_nothing(log_model: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import ranum.fix

    def no_search(*args, **kwargs):
        raise AssertionError("the search ran before the output path was checked")

    monkeypatch.setattr(ranum.fix, "fix", no_search)
    folder = tmp_path / "out"
    folder.mkdir()
    result = runner.invoke(app, ["fix", str(log_model), "-r", "x=0,1", "-r", "y=0,1", "-o", str(folder)])
    assert result.exit_code == 2, result.output
    assert "folder" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.onnx", "out"] and not any(folder.iterdir())


def test_a_failed_write_removes_its_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()  # os.replace onto a folder fails
    with pytest.raises(typer.Exit):
        _write_atomically(Console(stderr=True), target, "report")
    assert [p.name for p in tmp_path.iterdir()] == ["taken"] and not any(target.iterdir())


def test_a_patched_model_and_a_report_get_the_permissions_of_a_plain_write(log_model: Path, tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        fixed, report = tmp_path / "fixed.onnx", tmp_path / "report.json"
        result = runner.invoke(app, ["fix", str(log_model), "-r", "x=0,1", "-r", "y=0,1", "--on", "operator",
                                     "-o", str(fixed)])
        assert result.exit_code == 0, result.output
        result = runner.invoke(app, ["check", str(log_model), "-f", "json", "-o", str(report)])
        assert result.exit_code == 1, result.output
    finally:
        os.umask(umask)
    assert stat.S_IMODE(fixed.stat().st_mode) == 0o644
    assert stat.S_IMODE(report.stat().st_mode) == 0o644
