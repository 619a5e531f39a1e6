"""HTML report: one self-contained file with a summary, a findings table and a graph picture per finding."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import onnx
import pytest
from typer.testing import CliRunner

from ranum.cli import app
from ranum.report import render_html
from tests.frontend import defects
from tests.frontend.exports import defect_report
from tests.models import parse

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


class _Outline(HTMLParser):
    """Collects tags, attributes and text; fails on unbalanced svg/table/section tags."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in ("svg", "table", "section", "g", "tr"):
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("svg", "table", "section", "g", "tr"):
            assert self.stack and self.stack.pop() == tag, f"unbalanced </{tag}>"

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def outline(document: str) -> _Outline:
    parser = _Outline()
    parser.feed(document)
    parser.close()
    assert parser.stack == []
    return parser


def test_summary_table_and_one_picture_per_finding() -> None:
    report = defect_report("norm")
    page = outline(render_html(report))
    text = " ".join(page.text)
    assert "Summary" in text and f"{len(report.findings)} findings" in text
    rows = [a for t, a in page.tags if t == "tr" and a.get("class") in ("certain", "possible")]
    assert len(rows) == len(report.findings)
    svgs = [a for t, a in page.tags if t == "svg"]
    assert len(svgs) == len(report.findings)
    assert f"defects.py:{defects.defect_line('norm')}" in text


def test_picture_shows_the_path_from_inputs_with_intervals() -> None:
    report = defect_report("norm")
    (div,) = [f for f in report.findings if f.op_type == "Div"]
    page = outline(render_html(report))
    groups = [a for t, a in page.tags if t == "g"]
    targets = [g for g in groups if "target" in g["class"]]
    assert len(targets) == len(report.findings)
    assert any(g["data-node"] == div.node for g in targets)
    assert any(g["data-node"] == "x" and "input" in g["class"] for g in groups)
    assert any(g["data-node"] == "proj.weight" and "weight" in g["class"] for g in groups)
    assert any("Relu" in t for t in page.text)  # the path back to the input passes the ReLU
    assert sum(1 for t in page.text if t.startswith("[") and t.endswith("]")) >= 4  # intervals on nodes
    hot = [a for t, a in page.tags if t == "path" and a.get("stroke") == "#d00"]
    assert hot  # the edge of the invalid operand is highlighted


def test_self_contained() -> None:
    document = render_html(defect_report("log"))
    page = outline(document)
    for tag, attrs in page.tags:
        assert tag not in ("script", "link", "img", "iframe")
        for key in ("src", "href"):
            assert not str(attrs.get(key, "#")).lstrip().startswith(("http", "//")), (tag, attrs)


def test_model_text_is_escaped(tmp_path: Path) -> None:
    model = parse("""
<ir_version: 8, opset_import: ["" : 17]>
g (float[2] x) => (float[2] z) {
  z = Log(x)
}
""")
    model.graph.node[0].name = "<script>alert(1)</script>"
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    out = tmp_path / "r.html"
    result = CliRunner().invoke(app, ["check", str(path), "-r", "x=-1,1", "--format", "html", "-o", str(out)])
    assert result.exit_code == 1, result.output
    document = out.read_text()
    assert "<script>" not in document and "&lt;script&gt;" in document
    outline(document)


def test_clean_report() -> None:
    page = outline(render_html(defect_report("safe")))
    assert "No finding" in " ".join(page.text)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (optional browser check)")
def test_chromium_renders_table_and_picture(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    path.write_text(render_html(defect_report("norm")))
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(command + ["--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'id="findings"' in dom.stdout and "<svg" in dom.stdout and 'class="node target"' in dom.stdout
    shot = tmp_path / "shot.png"
    subprocess.run(command + [f"--screenshot={shot}", "--window-size=1400,1200", path.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000
