"""ranum on real architectures: tiny transformer and CNN models exported from PyTorch.

The models come from ``benchmarks/zoo.py`` (``transformers`` configs, random initialisation, ``tiny``
size) and are exported once per session into a pytest temporary folder. To keep the run short, each
family is exported with the TorchScript exporter (about a second each, and its graphs keep the shape
subgraphs: Shape, ConstantOfShape, Expand, Where, ...); GPT-2 is also exported with the dynamo
exporter (opset 18, which needs ``onnxscript``).

Asserted: no operator without a rule; in exact-weights mode every finding is proven real by a
concrete onnxruntime run, or the model is a known false-positive case marked ``xfail(strict=True)``
with the reason (so that fixing the analysis turns the mark into a failure to remove).

The ``extra`` families of the zoo (DeBERTa-v2, GPT-Neo, Mistral, Gemma-2, Mamba, DINOv2, Swin,
ConvNeXt-V2, wav2vec 2.0, BiT) widen the corpus: every operator has a rule, and every exact-weights finding
is confirmed by ``ranum confirm`` in onnxruntime (GPT-Neo adds the lowest float32 to an already
masked score, which overflows to -inf when the attention mask is 0; ConvNeXt-V2's global response
norm takes the gradient of an L2 norm that is 0 for a constant image).

Proven real: T5's relative-position bucket takes ``Log`` of ``|relative position| / max_exact``,
which is 0 on the diagonal; the ``-inf`` is then discarded by ``Where`` (a true finding; ``ranum
confirm`` reports that no model output is NaN/Inf in its witnessing run).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

import ranum
from ranum.confirm import SearchConfig, confirm

pytest.importorskip("transformers", reason="real-architecture tests need the 'zoo' extra (pip install -e .[zoo])")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import zoo  # noqa: E402

from tests.zoo.runtime import Runner, check_sample, sample_feeds, sampled_tensors  # noqa: E402

KNOWN: dict[str, str] = {}  # model -> reason its exact-weights findings are not all real yet (none today)
EXTRA = [(f.name, "torchscript") for f in zoo.FAMILIES.values() if f.extra]
MODELS = [("bert", "torchscript"), ("gpt2", "torchscript"), ("gpt2", "dynamo"), ("llama", "torchscript"),
          ("t5", "torchscript"), ("vit", "torchscript"), ("resnet50", "torchscript"), ("convnext", "torchscript"),
          ("whisper-encoder", "torchscript")]


@pytest.fixture(scope="session")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("zoo")


def _export(cache: Path, family: str, exporter: str) -> Path:
    if exporter == "dynamo":
        pytest.importorskip("onnxscript", reason="the dynamo exporter needs onnxscript (the 'zoo' extra)")
    return zoo.export(family, "tiny", exporter, cache=cache)


def _proven_real(path: Path, family: str, findings) -> set[str]:
    """Nodes of ``findings`` whose operand is invalid in one concrete onnxruntime run."""
    model = onnx.load(str(path))
    values = Runner(model).run(zoo.feeds(model, zoo.spec(family, "tiny", "exact")["inputs"]))
    real = set()
    for f in findings:
        operand = values.get(f.to_dict()["operand"])
        if operand is not None and f.op_type == "Log" and bool((operand <= 0).any()):
            real.add(f.node)
        elif operand is not None and f.to_dict()["hazard_id"] == "overflow" and not np.isfinite(operand).all():
            real.add(f.node)
    return real


@pytest.mark.parametrize(("family", "exporter"), MODELS, ids=[f"{f}-{e}" for f, e in MODELS])
def test_every_operator_has_a_rule(cache, family, exporter):
    path = _export(cache, family, exporter)
    report = ranum.check(path, zoo.spec(family, "tiny", "derived"))
    assert report.unsupported_ops == ()


def _exact_params():
    for family, exporter in MODELS:
        marks = [pytest.mark.xfail(strict=True, reason=KNOWN[family])] if family in KNOWN else []
        yield pytest.param(family, exporter, id=f"{family}-{exporter}", marks=marks)


@pytest.mark.parametrize(("family", "exporter"), list(_exact_params()))
def test_exact_weights_findings_are_real(cache, family, exporter):
    path = _export(cache, family, exporter)
    report = ranum.check(path, zoo.spec(family, "tiny", "exact"))
    assert report.unsupported_ops == ()
    real = _proven_real(path, family, report.findings)
    assert [f"{f.op_type}:{f.node}" for f in report.findings if f.node not in real] == []


def test_t5_relative_position_log_is_a_real_finding(cache):
    path = _export(cache, "t5", "torchscript")
    report = ranum.check(path, zoo.spec("t5", "tiny", "exact"))
    logs = [f for f in report.findings if f.op_type == "Log"]
    assert logs, "the relative-position Log of 0 must be reported"
    assert {f.node for f in logs} <= _proven_real(path, "t5", logs)
    # ranum confirm proves it too, and sees that the -inf never reaches the model's output (Where drops it)
    results = confirm(path, zoo.spec("t5", "tiny", "exact"), nodes=[f.node for f in logs]).results
    assert all(r.status == "confirmed" and r.reaches_outputs is False for r in results)


@pytest.mark.parametrize(("family", "exporter"), EXTRA, ids=[f"{f}-{e}" for f, e in EXTRA])
def test_extra_families_have_rules_and_only_confirmed_findings(cache, family, exporter):
    path = _export(cache, family, exporter)
    derived = ranum.check(path, zoo.spec(family, "tiny", "derived"))
    assert derived.unsupported_ops == ()
    spec = zoo.spec(family, "tiny", "exact")
    report = ranum.check(path, spec)
    assert report.unsupported_ops == ()
    if report.findings:
        results = confirm(path, spec, search_config=SearchConfig(seconds=5)).results
        assert [f"{r.op_type}:{r.node}" for r in results if r.status != "confirmed"] == []


def _check_sampled_runs(model: onnx.ModelProto, family: str, mode: str, label: str) -> None:
    """Every tensor of onnxruntime's runs at sampled inputs (and weights, when they are ranges) lies
    inside its bounds; a NaN or infinity is explained by a finding on its node or upstream."""
    analysis = ranum.analyze(model, zoo.spec(family, "tiny", mode))
    weights = {name for name, _, _ in sampled_tensors(analysis)} & {init.name for init in model.graph.initializer}
    runner, rng = Runner(model, fed=weights), np.random.default_rng(0)
    for sample in ("low", "high", "mix", "uniform"):
        check_sample(analysis, runner.run(sample_feeds(analysis, model, sample, rng)), f"{label} [{sample}]")


@pytest.mark.parametrize("mode", ["exact", "derived"])
@pytest.mark.parametrize(("family", "exporter"), MODELS + EXTRA, ids=[f"{f}-{e}" for f, e in MODELS + EXTRA])
def test_sampled_runs_lie_inside_the_bounds(cache, family, exporter, mode):
    path = _export(cache, family, exporter)
    _check_sampled_runs(onnx.load(str(path)), family, mode, f"{family}-{exporter} {mode}")


# onnxruntime's transformer optimizer fuses these exports into its contrib operators (SkipLayerNormalization,
# Gelu/BiasGelu/FastGelu, SimplifiedLayerNormalization, SkipSimplifiedLayerNormalization, QuickGelu):
# family -> (optimizer model type, optimization level)
FUSED = {"bert": ("bert", 2), "gpt2": ("gpt2", 1), "llama": ("gpt2", 2), "vit": ("vit", 1)}


def _fused(cache, family: str, path, skip_layer_norm: bool):
    """The transformers optimizer's graph of ``path`` (with or without its SkipLayerNormalization fusion)."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    model_type, level = FUSED[family]
    options = FusionOptions(model_type)
    options.enable_skip_layer_norm = options.enable_bias_skip_layer_norm = skip_layer_norm
    level = level if skip_layer_norm else 0  # onnxruntime's own level-2 optimizer fuses it too
    fused_path = cache / f"{family}-tiny-torchscript-fused{'' if skip_layer_norm else '-noskip'}.onnx"
    optimize_model(str(path), model_type=model_type, num_heads=0, hidden_size=0, opt_level=level,
                   optimization_options=options).save_model_to_file(str(fused_path))
    fused = onnx.load(str(fused_path))
    assert {n.op_type for n in fused.graph.node if n.domain == "com.microsoft"}, \
        "the optimizer fused nothing: the test no longer covers contrib operators"
    return fused_path, fused


@pytest.mark.parametrize("family", sorted(FUSED))
def test_onnxruntime_fused_graphs_keep_rules_and_bounds(cache, family):
    """The transformers optimizer's fused operators are as tight as the operators they fuse, except its
    SkipLayerNormalization (a running variance: see the README): a graph with it is checked for soundness,
    and for tightness without that fusion."""
    path = _export(cache, family, "torchscript")
    spec = zoo.spec(family, "tiny", "exact")
    plain = ranum.check(path, spec)
    assert [f.node for f in plain.findings] == []
    fused_path, fused = _fused(cache, family, path, skip_layer_norm=True)
    assert ranum.check(fused_path, spec).unsupported_ops == ()
    _check_sampled_runs(fused, family, "derived", f"fused {family}")
    if any(node.op_type == "SkipLayerNormalization" for node in fused.graph.node):
        fused_path, fused = _fused(cache, family, path, skip_layer_norm=False)
    optimized = ranum.check(fused_path, spec)
    assert optimized.unsupported_ops == () and not optimized.not_analysed_nodes
    assert [f.node for f in optimized.findings] == []
    for output in fused.graph.output:  # fused rules as tight as the rules of the operators they fuse
        (lo, hi), (plain_lo, plain_hi) = optimized.analysis.bounds(output.name), plain.analysis.bounds(output.name)
        assert float((hi - lo).max()) <= float((plain_hi - plain_lo).max()) * (1 + 1e-3)


@pytest.mark.parametrize("family", ["resnet50", "mobilenetv2", "bert"])
def test_onnxruntime_session_optimized_graphs_keep_rules_and_bounds(cache, family):
    """The graph onnxruntime's session optimizer saves (extended level: FusedConv, FusedMatMul, Gemm from
    MatMul + Add, the fused normalizations) gives the unoptimized export's findings and bounds; behind a fused
    SkipLayerNormalization bounds may be wider and overflows reported (its kernel takes a running variance,
    which on a near-constant row of large values falls far below the two-pass one of LayerNormalization)."""
    import onnxruntime as ort

    path = _export(cache, family, "torchscript")
    saved = cache / f"{family}-tiny-torchscript-session.onnx"
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(saved)
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    optimized_model = onnx.load(str(saved))
    assert {n.op_type for n in optimized_model.graph.node} & {"FusedConv", "FusedMatMul"}
    for mode in ("exact", "derived"):
        spec = zoo.spec(family, "tiny", mode)
        plain, optimized = ranum.check(path, spec), ranum.check(saved, spec)
        assert optimized.unsupported_ops == () and not optimized.not_analysed_nodes
        if any(node.op_type == "SkipLayerNormalization" for node in optimized_model.graph.node):
            assert len(optimized.findings) >= len(plain.findings)
            continue
        assert len(optimized.findings) == len(plain.findings)
        for output in optimized_model.graph.output:
            (lo, hi), (plain_lo, plain_hi) = optimized.analysis.bounds(output.name), plain.analysis.bounds(output.name)
            assert float((hi - lo).max()) <= float((plain_hi - plain_lo).max()) * (1 + 1e-3)
    _check_sampled_runs(optimized_model, family, "derived", f"session-optimized {family}")
