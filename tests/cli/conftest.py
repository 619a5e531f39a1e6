"""Models the command-line tests share."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from tests.models import LOG_OF_DIFFERENCE, parse


@pytest.fixture()
def log_model(tmp_path: Path) -> Path:
    """``log(x - y)`` saved as a file."""
    path = tmp_path / "log.onnx"
    onnx.save(parse(LOG_OF_DIFFERENCE), str(path))
    return path
