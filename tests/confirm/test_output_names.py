"""The folders and test modules confirm writes: one folder per finding, one basename per test module (pytest
collects a folder of them at once), and the folder's permissions those of a plain mkdir."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import onnx
from onnx import TensorProto, helper

from ranum.confirm import SearchConfig, confirm

CONFIG = SearchConfig(seed=0, seconds=5.0)

def _logs(names: list[str], op_type: str = "Log") -> onnx.ModelProto:
    """One ``op_type`` node per name, each of its own input x<k> (float[1, 2]) to its own output y<k>."""
    nodes = [helper.make_node(op_type, [f"x{k}"], [f"y{k}"], name) for k, name in enumerate(names)]
    values = [[helper.make_tensor_value_info(f"{side}{k}", TensorProto.FLOAT, [1, 2]) for k in range(len(names))]
              for side in ("x", "y")]
    model = helper.make_model(helper.make_graph(nodes, "g", *values), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


SAME_SLUG = _logs(["op/1", "op_1"])  # names that differ only by a character the folder slug drops
# Acos of x in [-1, 1]: its infinite derivatives at 1 and at -1 are two findings of one node
ACOS = _logs(["acos"], "Acos")


def _node_of(test_module: Path) -> str:
    line = next(line for line in test_module.read_text().splitlines() if line.startswith("NODE = "))
    return line.split(" = ", 1)[1].strip("'\"")


def test_nodes_whose_names_share_a_slug_get_a_folder_each(tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = confirm(SAME_SLUG, {"inputs": {"x0": [-1, 1], "x1": [-1, 1]}}, out, search_config=CONFIG)
    assert [r.status for r in report.results] == ["confirmed", "confirmed"]
    folders = [Path(r.dir) for r in report.results]
    assert len(set(folders)) == 2
    for result, folder in zip(report.results, folders):
        (module,) = folder.glob("test_*.py")
        assert _node_of(module) == result.node


def test_the_test_modules_of_two_findings_at_one_node_have_distinct_basenames(tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = confirm(ACOS, {"inputs": {"x0": [-1, 1]}}, out, search_config=CONFIG)
    written = [r for r in report.results if r.dir]
    assert len(written) == 2, [(r.hazard, r.status, r.note) for r in report.results]
    modules = sorted(out.rglob("test_*.py"))
    assert len({m.name for m in modules}) == len(modules) == 2
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


def test_the_output_folder_gets_the_permissions_of_a_plain_mkdir(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        out = tmp_path / "out"
        confirm(ACOS, {"inputs": {"x0": [-1, 1]}}, out, search_config=CONFIG)
    finally:
        os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
