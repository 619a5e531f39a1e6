"""PyTorch front end: export an ``nn.Module`` to ONNX with the dynamo exporter.

``torch.onnx.export(..., dynamo=True)`` keeps, for each ONNX node, the Python stack trace that
created its operator; :mod:`ranum.frontend._source` turns it into file/line/code for the reports.
The exporter needs ``onnxscript`` (extra ``ranum[torch-frontend]``), imported only here and only
when an export is asked for, so the rest of ranum works without it.

Where the dynamo exporter fails (Python branches on tensor values, some operators it cannot
convert, such as ``torch.cdist``), the module is exported by tracing instead (``dynamo=False``,
opset 17): the graph is then the operations that the example input runs, so a branch it does not
take is not in the graph. That is said in the export's ``notes`` (with the tracer's own warnings,
which name the lines whose control flow was fixed), which reach the report's warnings.

Invariants: graph inputs are named after the ``forward`` parameters (or ``input_names``); range
names are checked later, by the analysis, like any range; export failures (of both exporters) are
:class:`ModelError`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import io
import logging
import math
import os
import re
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
import torch

from ranum.errors import ModelError, RangeSpecError, RanumError
from ranum.graph._export_kinds import EXPORT_KIND_KEY

__all__ = ["ExportedModel", "InputSpec", "export_module", "is_module", "load_factory", "parse_input"]

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "float64": torch.float64,
           "int64": torch.int64, "int32": torch.int32, "bool": torch.bool}


@dataclass(frozen=True)
class InputSpec:
    """One model input given on the command line: ``NAME=SHAPE[:LO,HI][:DTYPE]``."""

    name: str
    shape: tuple[int, ...]
    low: float | None = None
    high: float | None = None
    dtype: str = "float32"

    def example(self, generator: torch.Generator) -> torch.Tensor:
        """A tensor of this shape and dtype with values inside the range (for tracing only)."""
        dtype = _DTYPES[self.dtype]
        low = 0.0 if self.low is None or not math.isfinite(self.low) else self.low
        high = 1.0 if self.high is None or not math.isfinite(self.high) else self.high
        if dtype == torch.bool:
            return torch.zeros(self.shape, dtype=dtype)
        if not dtype.is_floating_point:
            return torch.randint(int(math.ceil(low)), int(math.floor(high)) + 1, self.shape, generator=generator,
                                 dtype=dtype)
        return (low + (high - low) * torch.rand(self.shape, generator=generator, dtype=torch.float64)).to(dtype)


@dataclass(frozen=True)
class ExportedModel:
    """An exported module: the ONNX model, its input names and the ranges given for them, and what the
    user should know about how it was exported (``notes``: empty for a dynamo export)."""

    model: onnx.ModelProto
    input_names: tuple[str, ...]
    ranges: Mapping[str, tuple[float, float]]
    label: str
    notes: tuple[str, ...] = ()


def is_module(obj: object) -> bool:
    """True for a ``torch.nn.Module``."""
    return isinstance(obj, torch.nn.Module)


def parse_input(text: str) -> InputSpec:
    """Parse ``x=1x784:0,1`` (name, shape ``AxBxC``, optional range and dtype, e.g. ``ids=1x8:0,99:int64``).

    Raises:
        RangeSpecError: on any malformed part, naming it.
    """
    name, sep, rest = text.partition("=")
    parts = rest.split(":")
    if not sep or not name or not parts[0] or len(parts) > 3:
        raise RangeSpecError(f"--input '{text}' is not of the form NAME=SHAPE[:LO,HI][:DTYPE], e.g. x=1x784:0,1")
    shape = _shape(parts[0], text)
    low = high = None
    dtype = "float32"
    for part in parts[1:]:
        if part in _DTYPES:
            dtype = part
        else:
            low, high = _range(part, text)
    return InputSpec(name, shape, low, high, dtype)


def _shape(text: str, whole: str) -> tuple[int, ...]:
    if text in ("scalar", "()"):
        return ()
    dims = text.lower().split("x")
    if not all(d.strip().isdigit() for d in dims):
        raise RangeSpecError(f"--input '{whole}': shape '{text}' must be sizes joined by 'x', e.g. 1x3x32x32")
    return tuple(int(d) for d in dims)


def _range(text: str, whole: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise RangeSpecError(f"--input '{whole}': range '{text}' must be LO,HI (or a dtype: "
                             f"{', '.join(_DTYPES)})") from None
    if math.isnan(low) or math.isnan(high) or low > high:
        raise RangeSpecError(f"--input '{whole}': range '{text}' needs LO <= HI")
    return low, high


def load_factory(target: str) -> torch.nn.Module:
    """Import ``path/to/file.py:factory`` and call ``factory()``; it must return an ``nn.Module``.

    Raises:
        ModelError: the file or the factory is missing, raises, or returns something else.
    """
    file_text, _, factory_name = target.rpartition(":")
    path = Path(file_text).resolve()
    if not file_text.endswith(".py") or not factory_name.isidentifier():
        raise ModelError(f"'{target}' is not of the form path/to/file.py:factory")
    if not path.is_file():
        raise ModelError(f"Python file not found: {file_text}")
    module = _import_file(path)
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise ModelError(f"{file_text} has no callable '{factory_name}'")
    try:
        result = factory()
    except Exception as exc:  # noqa: BLE001 - user code: any failure is bad input
        raise ModelError(f"{factory_name}() in {file_text} raised {type(exc).__name__}: {exc}") from exc
    if not is_module(result):
        raise ModelError(f"{factory_name}() in {file_text} returned {type(result).__name__}, not a torch.nn.Module")
    return result


def _import_file(path: Path) -> Any:
    name = f"_ranum_model_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(name, str(path))
    if spec is None or spec.loader is None:
        raise ModelError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - user code
        raise ModelError(f"importing {path} raised {type(exc).__name__}: {exc}") from exc
    finally:
        sys.path.remove(str(path.parent))
    return module


def export_module(
    module: torch.nn.Module,
    example_inputs: Any,
    ranges: Mapping[str, Sequence[float]] | None = None,
    input_names: Sequence[str] | None = None,
) -> ExportedModel:
    """Export ``module`` to ONNX with the dynamo exporter (source locations in node metadata).

    Args:
        module: the model, in the mode (train/eval) it should be analysed in.
        example_inputs: a tensor, a tuple of positional tensors, or a dict of keyword tensors.
        ranges: NAME -> (LO, HI) for inputs (or initializers, by their ONNX names).
        input_names: names of the positional inputs (default: the ``forward`` parameter names).

    Returns:
        The :class:`ExportedModel`.

    Raises:
        RanumError: onnxscript missing; ModelError: the exporter failed.
    """
    if importlib.util.find_spec("onnxscript") is None:
        raise RanumError("exporting a PyTorch module needs the onnxscript package: "
                         "pip install 'ranum[torch-frontend]'")
    args, kwargs = _split_inputs(example_inputs)
    _check_arguments(module, args, kwargs)
    names = tuple(input_names) if input_names is not None else _parameter_names(module, len(args)) + tuple(kwargs)
    model, notes = _run_exporter(module, args, kwargs, names)
    graph_inputs = tuple(v.name for v in model.graph.input if v.name not in {i.name for i in model.graph.initializer})
    checked = {str(k): (float(v[0]), float(v[1])) for k, v in (ranges or {}).items()}
    return ExportedModel(model, graph_inputs, checked, type(module).__name__, notes)


def _check_arguments(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
    """Inputs that ``forward`` cannot take are the user's mistake: say so before both exporters fail on it."""
    try:
        signature = inspect.signature(module.forward)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        given = f"{len(args)} positional input(s)" + (f" and keywords {sorted(kwargs)}" if kwargs else "")
        raise ModelError(f"{type(module).__name__}.forward{signature} cannot take the {given} given: {exc}") from None


def _split_inputs(example_inputs: Any) -> tuple[tuple, dict]:
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,), {}
    if isinstance(example_inputs, Mapping):
        return (), dict(example_inputs)
    if isinstance(example_inputs, (tuple, list)):
        return tuple(example_inputs), {}
    raise RanumError(f"example_inputs must be a tensor, a tuple of tensors or a dict, not "
                     f"{type(example_inputs).__name__}")


def _parameter_names(module: torch.nn.Module, count: int) -> tuple[str, ...]:
    try:
        params = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):
        params = []
    names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][:count]
    return tuple(names) + tuple(f"input_{i}" for i in range(len(names), count))


def _run_exporter(module: torch.nn.Module, args: tuple, kwargs: dict, names: tuple[str, ...]
                  ) -> tuple[onnx.ModelProto, tuple[str, ...]]:
    """The exported model and notes on how: the dynamo exporter, else tracing (see the module
    docstring); both failing is a ModelError."""
    with _quiet_exporter():
        try:
            # optimize=False: the exporter's optimizer rewrites x + c for a constant c within 1e-8 of 0
            # into x (an epsilon of 1e-8 under a Sqrt or a division disappears: a defect the module does
            # not have), and folds weight-derived expressions (weight_norm's g * v / ||v||) into a
            # constant, hiding what a trained weight can reach
            program = torch.onnx.export(module, args, kwargs=kwargs or None, dynamo=True, input_names=list(names),
                                        verbose=False, external_data=False, optimize=False)
            invalid = _checker_error(program.model_proto)
            if invalid is None:
                return program.model_proto, ()
            # e.g. a buffer named like an operator's default output name ("mean" beside x.mean()): two values
            # of one name, which neither the checker nor onnxruntime accept
            dynamo_error = f"it wrote a model that fails the ONNX checker: {invalid}"
        except Exception as exc:  # noqa: BLE001 - the exporter raises many types
            dynamo_error = _first_line(exc)
        try:
            model, traced = _traced_export(module, args, kwargs, names)
        except Exception as exc:  # noqa: BLE001
            raise ModelError(f"torch.onnx.export(dynamo=True) failed for {type(module).__name__}: {dynamo_error}; "
                             f"exporting by tracing (dynamo=False) failed too: {_first_line(exc)}") from exc
    note = (f"the dynamo exporter failed ({dynamo_error}); the module was exported by tracing (dynamo=False): "
            "Python control flow that depends on tensor values follows the example input, so branches it "
            "does not take are not analysed, and findings carry no source line")
    return model, (note, *traced)


def _checker_error(model: onnx.ModelProto) -> str | None:
    """The ONNX checker's first line on ``model``, or None where it passes (or cannot judge a model past
    protobuf's 2 GB in memory)."""
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        return _first_line(exc)
    except ValueError:  # too large to serialise for the checker: the loader checks it without its weights
        return None
    return None


def _traced_export(module: torch.nn.Module, args: tuple, kwargs: dict, names: tuple[str, ...]
                   ) -> tuple[onnx.ModelProto, tuple[str, ...]]:
    """Export by tracing, with the tracer's warnings (each names a line whose control flow or Python
    value was fixed by the example input)."""
    if kwargs:
        raise ModelError("tracing takes positional inputs only")
    buffer = io.BytesIO()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", torch.jit.TracerWarning)
        torch.onnx.export(module, args, buffer, dynamo=False, opset_version=_TRACED_OPSET, input_names=list(names),
                          do_constant_folding=False, verbose=False)
    traced = []
    for item in caught:
        if issubclass(item.category, torch.jit.TracerWarning):
            text = f"tracing, {Path(item.filename).name}:{item.lineno}: {str(item.message).splitlines()[0]}"
            if text not in traced:
                traced.append(text)
    model = onnx.load_model_from_string(buffer.getvalue())
    _record_export_kinds(model, module)
    return model, tuple(traced)


def _record_export_kinds(model: onnx.ModelProto, module: torch.nn.Module) -> None:
    """Write on a traced export what the dynamo exporter records itself: which initializers are the module's
    parameters and which its buffers (value-info metadata; without constant folding, the tracer names an
    initializer by its state-dict key)."""
    kinds = {name: "PARAMETER" for name, _ in module.named_parameters()}
    kinds.update({name: "BUFFER" for name, _ in module.named_buffers()})
    declared = {value.name: value for value in model.graph.value_info}
    for tensor in model.graph.initializer:
        if tensor.name not in kinds:
            continue
        value = declared.get(tensor.name)
        if value is None:
            value = model.graph.value_info.add()
            value.name = tensor.name
        value.metadata_props.add(key=EXPORT_KIND_KEY, value=kinds[tensor.name])


_TRACED_OPSET = 17  # the tracing exporter's best-tested opset


def _first_line(exc: BaseException) -> str:
    """The first line of the innermost cause's message (the exporters wrap the cause in boilerplate of
    their own), without terminal colour codes."""
    causes = [exc]
    while causes[-1].__cause__ is not None and len(causes) < 16:
        causes.append(causes[-1].__cause__)
    for cause in reversed(causes):
        text = _ANSI.sub("", str(cause)).strip()
        if text:
            return text.splitlines()[0]
    return type(exc).__name__


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@contextlib.contextmanager
def _quiet_exporter():
    """The exporters log and warn freely, and print to stdout (into a JSON report): silence them."""
    quiet = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "torch._subclasses",
                                            "torch.fx", "onnxscript")]
    levels = [q.level for q in quiet]
    try:
        for q in quiet:
            q.setLevel(logging.CRITICAL)  # their errors reach the user in ranum's own message
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _native_stdout_silenced():
            warnings.simplefilter("ignore")
            yield
    finally:
        for q, level in zip(quiet, levels):
            q.setLevel(level)


@contextlib.contextmanager
def _native_stdout_silenced():
    """File descriptor 1 pointed at the null device: the TorchScript exporter's C++ code prints the graph it
    failed on ("Torch IR graph at exception") there, past Python's ``sys.stdout``."""
    try:
        saved = os.dup(1)
    except OSError:  # no descriptor 1 to silence
        yield
        return
    sys.stdout.flush()
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)
