"""Source locations of ONNX nodes, read from exporter metadata (no torch needed).

``torch.onnx.export(..., dynamo=True)`` writes, per node, ``metadata_props`` such as
``pkg.torch.onnx.stack_trace`` (the Python frames that created the operator, outermost first) and
``pkg.torch.onnx.name_scopes`` (the nn.Module path). The location of a node is the innermost frame
that is not inside the torch package: the user's line that called the operator, or the library
line (e.g. a model zoo's module) that did.

Invariants: a node without usable metadata has no location (never a guessed one); node names are
the names the analysis uses (:func:`ranum.graph.loader.stable_node_names`), subgraphs included.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import linecache
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

import onnx

from ranum.graph.loader import stable_node_names

__all__ = ["SourceLocation", "node_location", "source_locations", "STACK_TRACE_KEY", "NAME_SCOPES_KEY"]

STACK_TRACE_KEY = "pkg.torch.onnx.stack_trace"
NAME_SCOPES_KEY = "pkg.torch.onnx.name_scopes"
_LIBRARY_PACKAGES = ("torch", "onnxscript")
_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+)(?:, in (?P<func>.+))?$')


@dataclass(frozen=True)
class SourceLocation:
    """Where the operator was created in Python.

    Attributes:
        file: the source file, as the exporter recorded it (usually absolute).
        line: 1-based line number.
        code: the stripped text of that line ("" when neither the trace nor the file has it).
        module: the nn.Module path of the operator (e.g. ``encoder.layer.0``), "" at the top level.
    """

    file: str
    line: int
    code: str
    module: str = ""

    def to_dict(self) -> dict:
        """The JSON form: file, line, code (and module)."""
        return {"file": self.file, "line": self.line, "code": self.code, "module": self.module}

    def display_path(self, base: Path | None = None) -> str:
        """The file relative to ``base`` (default: the working folder) when inside it, else as recorded."""
        root = (base or Path.cwd()).resolve()
        try:
            return Path(self.file).resolve().relative_to(root).as_posix()
        except (ValueError, OSError):
            return self.file

    def short(self) -> str:
        """``file.py:42`` with the path relative to the working folder."""
        return f"{self.display_path()}:{self.line}"


def source_locations(model: onnx.ModelProto | None, names: Collection[str] | None = None
                     ) -> dict[str, SourceLocation]:
    """Node name -> location, for every node (subgraphs included) whose metadata gives one; with
    ``names``, for those nodes only (parsing every node's stack trace costs as much as analysing a
    small model)."""
    if model is None or (names is not None and not names):
        return {}
    return dict(_walk(model.graph, None if names is None else frozenset(names)))


def _walk(graph: onnx.GraphProto, names: frozenset[str] | None) -> Iterator[tuple[str, SourceLocation]]:
    for name, proto in stable_node_names(graph):
        location = node_location(proto) if names is None or name in names else None
        if location is not None:
            yield name, location
        for attr in proto.attribute:
            for sub in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
                yield from _walk(sub, names)


def node_location(node: onnx.NodeProto) -> SourceLocation | None:
    """The location of one node from its metadata, or None."""
    props = {p.key: p.value for p in node.metadata_props}
    trace = props.get(STACK_TRACE_KEY)
    if not trace:
        return None
    frames = [frame for frame in parse_stack_trace(trace) if not frame[0].startswith("<")]
    if not frames:  # only generated code (an operator created under torch.no_grad()): no file to point at
        return None
    file, line, code = _innermost_user_frame(frames)
    if not code:
        code = linecache.getline(file, line).strip()
    return SourceLocation(file, line, code, _module_path(props.get(NAME_SCOPES_KEY, "")))


def parse_stack_trace(trace: str) -> list[tuple[str, int, str]]:
    """(file, line, code) for each frame of a Python-formatted stack trace, outermost first."""
    frames: list[tuple[str, int, str]] = []
    lines = trace.splitlines()
    for i, text in enumerate(lines):
        match = _FRAME.match(text)
        if match is None:
            continue
        following = lines[i + 1] if i + 1 < len(lines) else ""
        code = "" if _FRAME.match(following) else following.strip()
        frames.append((match["file"], int(match["line"]), code))
    return frames


def _innermost_user_frame(frames: list[tuple[str, int, str]]) -> tuple[str, int, str]:
    """The innermost frame outside the torch package; the outermost frame if all are inside it."""
    for frame in reversed(frames):
        if not _inside_torch(frame[0]):
            return frame
    return frames[0]


def _inside_torch(file: str) -> bool:
    """Frames of torch itself (installed or from a source tree), of onnxscript, or synthetic ones."""
    if file.startswith("<"):
        return True
    parts = Path(file).parts
    if any(parts[i] in _LIBRARY_PACKAGES and parts[i - 1] in ("site-packages", "dist-packages")
           for i in range(1, len(parts))):
        return True
    return any(root is not None and file.startswith(root) for root in map(_package_root, _LIBRARY_PACKAGES))


@functools.cache
def _package_root(name: str) -> str | None:
    """Folder of an importable package (found without importing it; looked up once per process)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return str(Path(next(iter(spec.submodule_search_locations)))) + "/"


def _module_path(scopes_text: str) -> str:
    """``"['', 'encoder', 'layer', 'linear']"`` -> ``encoder.layer`` (the last scope is the op itself). Newer
    exporters write each scope as the whole path so far (``['', 'encoder', 'encoder.layer', 'linear']``): a
    scope that extends the path replaces it."""
    try:
        scopes = ast.literal_eval(scopes_text) if scopes_text else []
    except (ValueError, SyntaxError):
        return ""
    if not isinstance(scopes, list):
        return ""
    path = ""
    for name in (str(s) for s in scopes[:-1] if s):
        path = name if not path or name.startswith(path + ".") else f"{path}.{name}"
    return path
