"""Real architectures for ranum: transformer and CNN models exported from PyTorch to ONNX.

Each family is built from a ``transformers`` config with random initialisation (no weights are
downloaded), at a ``tiny`` size (a few layers, hidden 64: for tests) or its ``full`` size (for the
benchmark), and exported with the dynamo exporter (``dynamo=True``, opset 18) and, where it works,
the TorchScript exporter (``dynamo=False``, opset 17). Shapes are static, batch 1. Exports are cached
under ``benchmarks/.cache/`` (git-ignored) keyed by family, size and exporter.

Input ranges (the spec handed to ``ranum.check``):
  * token ids: ``[0, vocab - 1]``; attention masks: ``[0, 1]``;
  * images (``pixel_values``): ``[-3, 3]``, which holds ImageNet-normalised pixels
    ``(x - mean) / std`` for ``x`` in ``[0, 1]`` (extremes -2.12 and 2.64);
  * Whisper log-mel features: ``[-2, 2]`` (Whisper's features are ``(clamped log10 + 4) / 4``,
    about ``[-1, 1.5]`` in practice).

Weight modes: ``exact`` (the random initial values, taken exactly) and ``derived`` (ranum's default
range derived from each weight's values).

``python benchmarks/zoo.py --check [--size tiny|full] [--models a b ...] [--exporters dynamo torchscript]
[--prove SECONDS] [--repeats N]`` prints per model: nodes, findings in each mode (with ``--prove``: how many
``ranum confirm`` proved real in onnxruntime, and whether the NaN/Inf reached a model output),
the load seconds (reading, ONNX checker, shape inference), analysis seconds in each mode (the rest
of ``ranum.check``; the median of ``--repeats`` whole checks, 3 by default, all kept in the JSON:
single runs on a shared machine vary by tens of percent), onnxruntime CPU inference seconds
(median of 10 after warm-up, 2 threads; session creation not counted, as load is not), the
analysis/inference ratios and ranum's peak memory (growth of a fresh process's resident-set
high-water mark over one ``ranum.check``), and writes
``benchmarks/out/zoo-<size>.json`` (totals with the load included are there too). ``transformers``
and ``onnxscript`` come with the ``zoo`` extra (``pip install -e .[zoo]``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(__file__).resolve().parent / ".cache"
SIZES = ("tiny", "full")
EXPORTERS = ("dynamo", "torchscript")
IMAGE_RANGE = (-3.0, 3.0)
AUDIO_RANGE = (-2.0, 2.0)


@dataclass(frozen=True)
class Built:
    """A PyTorch module ready to export: example inputs (name -> tensor) and their ranges."""

    module: object
    inputs: dict
    ranges: dict


@dataclass(frozen=True)
class Family:
    """One architecture: ``build(size)`` returns a :class:`Built`. ``extra`` families are not in the
    benchmark's default list (they widen the test corpus; name them with ``--models``)."""

    name: str
    build: Callable[[str], Built]
    torchscript: bool = True
    extra: bool = False


# --------------------------------------------------------------------------------------------- builders


def _wrap(model, output: str = "first"):
    """A module returning one tensor (the first output) from keyword inputs given positionally."""
    import torch

    class Wrapped(torch.nn.Module):
        def __init__(self, inner, names):
            super().__init__()
            self.inner = inner
            self.names = names

        def forward(self, *args):
            out = self.inner(**dict(zip(self.names, args)), return_dict=False)
            return out[0]

    model.eval()
    return lambda names: Wrapped(model, names)


def _text(model, vocab: int, seq: int, names=("input_ids", "attention_mask")) -> Built:
    import torch

    gen = torch.Generator().manual_seed(0)
    inputs = {"input_ids": torch.randint(0, vocab, (1, seq), generator=gen)}
    ranges = {"input_ids": (0, vocab - 1)}
    if "attention_mask" in names:
        inputs["attention_mask"] = torch.ones(1, seq, dtype=torch.int64)
        ranges["attention_mask"] = (0, 1)
    if "decoder_input_ids" in names:
        inputs["decoder_input_ids"] = torch.randint(0, vocab, (1, seq), generator=gen)
        ranges["decoder_input_ids"] = (0, vocab - 1)
    return Built(_wrap(model)(list(inputs)), inputs, ranges)


def _image(model, size: int, channels: int = 3) -> Built:
    import torch

    gen = torch.Generator().manual_seed(0)
    inputs = {"pixel_values": torch.randn(1, channels, size, size, generator=gen).clamp(*IMAGE_RANGE)}
    return Built(_wrap(model)(list(inputs)), inputs, {"pixel_values": IMAGE_RANGE})


def _seed() -> None:
    import torch

    torch.manual_seed(0)


def bert(size: str, half: bool = False) -> Built:
    import transformers as tf

    _seed()
    kw = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
              vocab_size=512, max_position_embeddings=64) if size == "tiny" else {}
    model = tf.BertModel(tf.BertConfig(attn_implementation="eager", **kw), add_pooling_layer=False)
    if half:
        model = model.half()
    return _text(model, model.config.vocab_size, 16 if size == "tiny" else 128)


def distilbert(size: str) -> Built:
    import transformers as tf

    _seed()
    kw = dict(dim=64, n_layers=2, n_heads=2, hidden_dim=128, vocab_size=512,
              max_position_embeddings=64) if size == "tiny" else {}
    model = tf.DistilBertModel(tf.DistilBertConfig(attn_implementation="eager", **kw))
    return _text(model, model.config.vocab_size, 16 if size == "tiny" else 128)


def gpt2(size: str) -> Built:
    import transformers as tf

    _seed()
    kw = dict(n_embd=64, n_layer=2, n_head=2, vocab_size=512, n_positions=64) if size == "tiny" else {}
    model = tf.GPT2LMHeadModel(tf.GPT2Config(attn_implementation="eager", use_cache=False, **kw))
    return _text(model, model.config.vocab_size, 16 if size == "tiny" else 128)


def llama(size: str, half: bool = False) -> Built:
    import transformers as tf

    _seed()
    kw = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
              intermediate_size=128, vocab_size=512) if size == "tiny" else dict(
        hidden_size=512, num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=4,
        intermediate_size=1376, vocab_size=32000)
    config = tf.LlamaConfig(attn_implementation="eager", use_cache=False, max_position_embeddings=256,
                            hidden_act="silu", **kw)
    model = tf.LlamaForCausalLM(config)
    if half:
        model = model.half()
    return _text(model, config.vocab_size, 16 if size == "tiny" else 128)


def t5(size: str) -> Built:
    import transformers as tf

    _seed()
    kw = dict(d_model=64, d_kv=32, d_ff=128, num_layers=2, num_heads=2, vocab_size=512) if size == "tiny" else dict(
        d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_heads=8, vocab_size=32128)
    model = tf.T5Model(tf.T5Config(attn_implementation="eager", use_cache=False, **kw))
    names = ("input_ids", "attention_mask", "decoder_input_ids")
    return _text(model, model.config.vocab_size, 16 if size == "tiny" else 128, names)


def vit(size: str) -> Built:
    import transformers as tf

    _seed()
    kw = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, image_size=32,
              patch_size=8) if size == "tiny" else {}
    config = tf.ViTConfig(attn_implementation="eager", **kw)
    return _image(tf.ViTModel(config, add_pooling_layer=False), config.image_size)


def resnet(size: str) -> Built:
    import transformers as tf

    _seed()
    kw = dict(embedding_size=16, hidden_sizes=[32, 64], depths=[1, 1]) if size == "tiny" else {}
    model = tf.ResNetForImageClassification(tf.ResNetConfig(**kw))
    return _image(model, 32 if size == "tiny" else 224)


def convnext(size: str) -> Built:
    import transformers as tf

    _seed()
    kw = dict(hidden_sizes=[16, 32], depths=[1, 1], num_stages=2) if size == "tiny" else {}
    model = tf.ConvNextForImageClassification(tf.ConvNextConfig(**kw))
    return _image(model, 32 if size == "tiny" else 224)


def mobilenet(size: str) -> Built:
    import transformers as tf

    _seed()
    kw = dict(depth_multiplier=0.35, image_size=32) if size == "tiny" else {}
    model = tf.MobileNetV2ForImageClassification(tf.MobileNetV2Config(**kw))
    return _image(model, 32 if size == "tiny" else 224)


def whisper(size: str) -> Built:
    import torch
    import transformers as tf

    _seed()
    kw = dict(d_model=64, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=128, decoder_layers=1,
              decoder_attention_heads=2, decoder_ffn_dim=128, max_source_positions=50) if size == "tiny" else dict(
        d_model=384, encoder_layers=4, encoder_attention_heads=6, encoder_ffn_dim=1536, decoder_layers=4,
        decoder_attention_heads=6, decoder_ffn_dim=1536)
    config = tf.WhisperConfig(attn_implementation="eager", num_mel_bins=80, **kw)
    encoder = tf.WhisperModel(config).get_encoder()
    frames = 2 * config.max_source_positions
    gen = torch.Generator().manual_seed(0)
    inputs = {"input_features": torch.rand(1, 80, frames, generator=gen) * 2 - 1}
    return Built(_wrap(encoder)(list(inputs)), inputs, {"input_features": AUDIO_RANGE})


def _from_config(model_class: str, config_class: str, size: str, tiny: dict, inputs: str) -> Built:
    """A ``transformers`` model from its config class: ``tiny`` overrides for the tiny size, the
    library's defaults (the base model) for the full size. ``inputs``: text, image or audio."""
    import torch
    import transformers as tf

    _seed()
    config = getattr(tf, config_class)(**(tiny if size == "tiny" else {}))
    config._attn_implementation = "eager"
    if hasattr(config, "use_cache"):
        config.use_cache = False
    model = getattr(tf, model_class)(config)
    if inputs == "text":
        return _text(model, config.vocab_size, 16 if size == "tiny" else 128)
    if inputs == "ids":
        return _text(model, config.vocab_size, 16 if size == "tiny" else 128, names=("input_ids",))
    if inputs == "image":
        return _image(model, getattr(config, "image_size", 224) if size == "tiny" else 224)
    gen = torch.Generator().manual_seed(0)
    audio = {"input_values": torch.rand(1, 800 if size == "tiny" else 16000, generator=gen) * 2 - 1}
    return Built(_wrap(model)(list(audio)), audio, {"input_values": AUDIO_RANGE})


_TINY_TEXT = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, vocab_size=512)
_TINY_VISION = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, image_size=32,
                    patch_size=8)
_TINY_AUDIO = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                   conv_dim=(32, 32), conv_stride=(5, 2), conv_kernel=(10, 3), num_feat_extract_layers=2,
                   num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)
# name -> (model class, config class, tiny config, inputs)
_EXTRA = {
    "deberta-v2": ("DebertaV2Model", "DebertaV2Config", _TINY_TEXT, "text"),
    "gpt-neo": ("GPTNeoForCausalLM", "GPTNeoConfig", dict(hidden_size=64, num_layers=2, num_heads=4, vocab_size=512,
                attention_types=[[["global", "local"], 1]], window_size=8), "text"),
    "mistral": ("MistralForCausalLM", "MistralConfig", dict(_TINY_TEXT, num_key_value_heads=2), "text"),
    "gemma2": ("Gemma2ForCausalLM", "Gemma2Config", dict(_TINY_TEXT, num_key_value_heads=2, head_dim=16), "text"),
    "mamba": ("MambaForCausalLM", "MambaConfig", dict(hidden_size=64, num_hidden_layers=2, vocab_size=512,
              state_size=8), "ids"),
    "dinov2": ("Dinov2Model", "Dinov2Config", _TINY_VISION, "image"),
    "swin": ("SwinModel", "SwinConfig", dict(image_size=32, patch_size=2, embed_dim=16, depths=[1, 1],
             num_heads=[2, 2], window_size=4), "image"),
    "convnextv2": ("ConvNextV2Model", "ConvNextV2Config", dict(hidden_sizes=[16, 32], depths=[1, 1], num_stages=2,
                   image_size=32), "image"),
    "wav2vec2": ("Wav2Vec2Model", "Wav2Vec2Config", _TINY_AUDIO, "audio"),
    # weight-standardised convolutions: the TorchScript export normalizes each weight with a training-mode
    # BatchNormalization
    "bit": ("BitModel", "BitConfig", dict(image_size=32, embedding_size=16, hidden_sizes=[32, 64], depths=[1, 1],
            num_groups=8), "image"),
}


def _extra(name: str) -> Family:
    model_class, config_class, tiny, inputs = _EXTRA[name]
    return Family(name, lambda size: _from_config(model_class, config_class, size, tiny, inputs), extra=True)


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("bert", bert),
    Family("distilbert", distilbert),
    Family("gpt2", gpt2),
    Family("llama", llama),
    Family("t5", t5),
    Family("vit", vit),
    Family("resnet50", resnet),
    Family("convnext", convnext),
    Family("mobilenetv2", mobilenet),
    Family("whisper-encoder", whisper),
    Family("bert-fp16", lambda size: bert(size, half=True)),
    Family("llama-fp16", lambda size: llama(size, half=True)),
    *(_extra(name) for name in _EXTRA),
)}


# --------------------------------------------------------------------------------------------- export


def export(family: str, size: str = "tiny", exporter: str = "dynamo", cache: Path = CACHE) -> Path:
    """Build and export one model (cached). Returns the ``.onnx`` path.

    Raises:
        RuntimeError: if the exporter fails on this model.
    """
    path = cache / f"{family}-{size}-{exporter}.onnx"
    if path.exists():
        return path
    import torch

    built = FAMILIES[family].build(size)
    module = built.module
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.onnx")
    args = tuple(built.inputs.values())
    names = list(built.inputs)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            torch.onnx.export(module, args, str(tmp), input_names=names, output_names=["output"], dynamo=True,
                              opset_version=18, external_data=False, verbose=False)
        else:
            torch.onnx.export(module, args, str(tmp), input_names=names, output_names=["output"], dynamo=False,
                              opset_version=17)
    model = onnx.load(str(tmp))
    onnx.save(model, str(path))
    tmp.unlink()
    return path


def spec(family: str, size: str, weights: str) -> dict:
    """The range spec of a model: its input ranges and the weight mode (``exact`` or ``derived``)."""
    ranges = _ranges(family, size)
    return {"inputs": {k: list(v) for k, v in ranges.items()}, "weights": {"default": weights}}


def _ranges(family: str, size: str) -> dict:
    import transformers as tf  # noqa: F401  (the ranges read the model's config)

    built = FAMILIES[family].build(size)
    return built.ranges


def feeds(model: onnx.ModelProto, ranges: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """Concrete inputs inside ``ranges`` (masks all ones, ids and images uniform)."""
    from onnx import helper

    rng = np.random.default_rng(seed)
    out = {}
    for value in model.graph.input:
        ttype = value.type.tensor_type
        shape = [d.dim_value for d in ttype.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(ttype.elem_type)
        low, high = ranges[value.name]
        if "mask" in value.name:
            out[value.name] = np.ones(shape, dtype=dtype)
        elif np.issubdtype(dtype, np.integer):
            out[value.name] = rng.integers(low, high + 1, size=shape).astype(dtype)
        else:
            out[value.name] = rng.uniform(low, high, size=shape).astype(dtype)
    return out


# --------------------------------------------------------------------------------------------- check


def prove(path: Path, model_spec: dict, seconds: float = 20.0) -> dict[str, dict]:
    """``ranum confirm`` on every finding: node -> how it was proven (or not) in onnxruntime.

    Each entry: ``status`` (confirmed / not_confirmed), the search ``strategy`` that found the
    failing inputs, and ``reaches_outputs``: whether NaN/Inf reached a model output in that
    onnxruntime run (False: the invalid value is discarded downstream)."""
    from ranum.confirm import SearchConfig, confirm

    report = confirm(path, model_spec, search_config=SearchConfig(seconds=seconds))
    return {f"{r.op_type}:{r.node}": {"status": r.status, "strategy": r.strategy,
                                      "reaches_outputs": r.reaches_outputs} for r in report.results}


def _measure(path: Path, model_spec: dict, repeats: int = 1) -> tuple[object, list[float], int]:
    """``repeats`` timed ``ranum.check`` runs (the median run's report, and every run's seconds in
    the order run), and the peak memory in bytes of one more.

    The peak is measured in a fresh Python process (Linux): its resident-set high-water mark
    (``VmHWM``, which unlike ``ru_maxrss`` does not inherit the parent's) after ``ranum.check`` less
    its resident size just before (ranum, torch and onnx imported), so torch's tensor storage counts,
    which tracemalloc does not see."""
    import time

    import ranum

    runs = []
    for _ in range(max(repeats, 1)):
        start = time.perf_counter()
        report = ranum.check(path, model_spec)
        runs.append((time.perf_counter() - start, report))
    median = sorted(runs, key=lambda run: run[0])[len(runs) // 2]
    return median[1], [seconds for seconds, _ in runs], _peak_growth(path, model_spec)


_PEAK_SCRIPT = """
import json, sys
import ranum
for name in ranum.__all__:  # import the analysis (torch, onnx, onnxruntime) before the baseline: growth is the check's
    getattr(ranum, name)
def status(key):  # Linux: VmRSS (resident now) and VmHWM (its peak), of this process image only
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))
before = status("VmRSS")
ranum.check(sys.argv[1], json.loads(sys.argv[2]))
print(max(status("VmHWM") - before, 0))
"""


def _peak_growth(path: Path, model_spec: dict) -> int:
    import json
    import subprocess

    done = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(path), json.dumps(model_spec)],
                          capture_output=True, text=True, check=True)
    return int(done.stdout.strip().splitlines()[-1])


def check_row(family: str, size: str, exporter: str, proof_seconds: float = 0.0, repeats: int = 3) -> dict:
    """Analyse one model in both weight modes and time onnxruntime; one JSON-ready row.

    ``seconds`` is the whole ``ranum.check`` (load included); ``analysis_seconds`` leaves out the
    load (reading, ONNX checker, shape inference), as the onnxruntime time leaves out building its
    session. With ``proof_seconds`` > 0 every finding is put to ``ranum confirm`` (``proofs``)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _timing import ort_inference_seconds

    path = export(family, size, exporter)
    model = onnx.load(str(path))
    ranges = _ranges(family, size)
    row = {"model": f"{family}-{size}-{exporter}", "nodes": len(model.graph.node),
           "model_bytes": path.stat().st_size}
    inference = ort_inference_seconds(model, feeds(model, ranges))
    row["onnxruntime_seconds"] = inference
    for mode in ("exact", "derived"):
        report, runs, peak = _measure(path, spec(family, size, mode), repeats)
        seconds = sorted(runs)[len(runs) // 2]
        analysis_seconds = seconds - report.phase_seconds["load"]
        row[mode] = {
            "findings": len(report.findings),
            "finding_nodes": [f"{f.op_type}:{f.node}" for f in report.findings],
            "unsupported_ops": list(report.unsupported_ops),
            "seconds": seconds, "seconds_runs": runs, "ratio": seconds / inference,
            "phase_seconds": dict(report.phase_seconds),
            "analysis_seconds": analysis_seconds, "analysis_ratio": analysis_seconds / inference,
            "peak_bytes": peak,
            "peak_over_model": peak / row["model_bytes"],
        }
        if proof_seconds > 0 and report.findings:
            row[mode]["proofs"] = prove(path, spec(family, size, mode), proof_seconds)
    return row


def _print(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="ranum check on real architectures")
    for column in ("model", "nodes", "unsupp.", "find. exact", "find. derived", "proven", "load s", "exact s",
                   "derived s", "ort s", "exact/ort", "derived/ort", "peak MB", "peak/model"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for r in rows:
        if "error" in r:
            table.add_row(r["model"], "-", r["error"][:40], *["-"] * 11)
            continue
        e, d = r["exact"], r["derived"]
        peak = max(e["peak_bytes"], d["peak_bytes"])
        table.add_row(r["model"], str(r["nodes"]), ",".join(sorted(set(e["unsupported_ops"]))) or "0",
                      str(e["findings"]), str(d["findings"]), _proven(e, d),
                      f"{e['phase_seconds']['load']:.2f}", f"{e['analysis_seconds']:.2f}",
                      f"{d['analysis_seconds']:.2f}", f"{r['onnxruntime_seconds']:.4f}",
                      f"{e['analysis_ratio']:.1f}", f"{d['analysis_ratio']:.1f}",
                      f"{peak / 2**20:.0f}", f"{peak / r['model_bytes']:.1f}")
    Console(width=200).print(table)


def _proven(*modes: dict) -> str:
    """``confirmed/findings`` over both modes ("-" when the findings were not put to confirm)."""
    proofs = [p for m in modes for p in m.get("proofs", {}).values()]
    total = sum(m["findings"] for m in modes)
    if total and not proofs:
        return "-"
    return f"{sum(p['status'] == 'confirmed' for p in proofs)}/{total}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="analyse and time the models")
    parser.add_argument("--size", choices=SIZES, default="tiny")
    parser.add_argument("--models", nargs="*", default=[f.name for f in FAMILIES.values() if not f.extra],
                        choices=list(FAMILIES))
    parser.add_argument("--exporters", nargs="*", default=["dynamo"], choices=list(EXPORTERS))
    parser.add_argument("--prove", type=float, default=0.0, metavar="SECONDS",
                        help="put every finding to ranum confirm with this budget per finding (0: do not)")
    parser.add_argument("--repeats", type=int, default=3, metavar="N",
                        help="time N whole checks per model and mode, and report the median")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _timing import write_json

    rows = []
    for family in args.models:
        for exporter in args.exporters:
            if not args.check:
                export(family, args.size, exporter)
                continue
            try:
                rows.append(check_row(family, args.size, exporter, args.prove, args.repeats))
            except Exception as exc:  # an exporter failure is a row, not the end of the benchmark
                rows.append({"model": f"{family}-{args.size}-{exporter}", "error": f"{type(exc).__name__}: {exc}"})
    if args.check:
        _print(rows)
        write_json(f"zoo-{args.size}", rows, {"size": args.size, "models": len(rows)})


if __name__ == "__main__":
    main()
