"""README stays true: its operator table lists every registered operator, and its two set-up
commands are the Makefile targets CI runs."""

from __future__ import annotations

from pathlib import Path

from ranum.ops import REGISTRY
from ranum.ops.catalog import catalog, markdown_table

ROOT = Path(__file__).resolve().parent.parent


def test_readme_operator_table_is_current() -> None:
    readme = (ROOT / "README.md").read_text()
    assert markdown_table(catalog(REGISTRY)) in readme, "regenerate with `ranum ops --markdown`"


def test_readme_setup_commands_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "\ndemo:" in makefile and "\ntest:" in makefile
    assert "make test" in (ROOT / ".ci" / "run").read_text()
