"""The intent model's fast inference path: an ONNX export run by ONNX Runtime.

:func:`export` turns a bundle (ml.models.intent.model) into a folder that predicts without torch:

    model.onnx        input_ids, attention_mask (int64, dynamic batch and sequence axes)
                      -> probabilities (batch, n_labels): encoder, mean pooling, L2 norm, head
                      and softmax in one graph; BERT fusions of the ONNX Runtime transformer
                      optimiser (attention, layer norms, GELU); with ``quantize`` the weights of
                      the MatMuls and fused attention are dynamically quantised to int8
    tokenizer/        copied from the bundle
    intent_meta.json  the bundle's meta (labels, threshold, max_length, ...) plus "onnx": how
                      the export was made

:func:`load_onnx_intent_model` loads such a folder; its ``predict`` is the torch model's: the same
tokenising, batching, threshold and bad-row rules (:mod:`ml.models.intent.inference`).
Whether the variant may serve is decided by evaluation, which scores it on the frozen test split
(``intent.fast_variant`` in params.yaml).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.core.errors import InputError
from ml.models.intent.data import pad_ids, tokenize
from ml.models.intent.inference import (
    META_FILE,
    batched_proba,
    clip_texts,
    predictions_frame,
    read_meta,
)

log = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAME = "probabilities"
# Opset 17 has LayerNormalization (the fusions start from it); ONNX Runtime 1.31 runs up to 23.
OPSET = 17
VARIANT_INT8 = "onnx-int8"
VARIANT_FP32 = "onnx-fp32"
# Dynamic quantisation targets: MatMul (feed-forward, projections) and the fused attention.
# Embeddings stay fp32: a table lookup gains no speed from int8, only error.
QUANTIZED_OPS = ("MatMul", "Attention")


def variant_name(quantize: bool) -> str:
    return VARIANT_INT8 if quantize else VARIANT_FP32


def is_onnx_export(folder: str | Path) -> bool:
    """A folder written by :func:`export` (model.onnx beside the bundle's meta)."""
    return (Path(folder) / ONNX_FILE).is_file() and (Path(folder) / META_FILE).is_file()


def export(bundle_dir: str | Path, out_dir: str | Path, quantize: bool = True) -> Path:
    """Export the bundle in ``bundle_dir`` to ``out_dir`` (see the module docstring); returns
    ``out_dir``. ``quantize`` False leaves the optimised graph in fp32."""
    bundle_dir, out_dir = Path(bundle_dir), Path(out_dir)
    meta = read_meta(bundle_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="intent-onnx-") as tmp:
        raw, fused = Path(tmp) / "raw.onnx", Path(tmp) / "fused.onnx"
        config = _export_graph(bundle_dir, raw)
        fusions = _optimise(raw, fused, config)
        if quantize:
            _quantise(fused, out_dir / ONNX_FILE)
        else:
            shutil.copyfile(fused, out_dir / ONNX_FILE)
    shutil.copytree(bundle_dir / "tokenizer", out_dir / "tokenizer", dirs_exist_ok=True)
    onnx_meta = {
        "variant": variant_name(quantize),
        "file": ONNX_FILE,
        "inputs": list(INPUT_NAMES),
        "output": OUTPUT_NAME,
        "opset": OPSET,
        "fused_operators": fusions,
        "quantization": (
            {"method": "dynamic", "weights": "int8", "ops": list(QUANTIZED_OPS)}
            if quantize
            else None
        ),
        "versions": {d: _version(d) for d in ("torch", "onnx", "onnxruntime", "transformers")},
    }
    full = dict(meta.raw or {}) | {"onnx": onnx_meta}
    (out_dir / META_FILE).write_text(json.dumps(full, indent=2, sort_keys=True), encoding="utf-8")
    return out_dir


def _export_graph(bundle_dir: Path, path: Path) -> Any:
    """The bundle's network + softmax as ONNX (TorchScript exporter); returns the HF config."""
    import torch

    from ml.models.intent.model import IntentModel

    # Eager attention: the graph pattern ONNX Runtime's BERT attention fusion recognises.
    model = IntentModel.load(bundle_dir, device="cpu", attn_implementation="eager")

    class Probabilities(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = model.net

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.net(input_ids, attention_mask).float(), dim=-1)

    # Two rows of different lengths, so nothing is specialised to one batch or sequence size.
    ids = tokenize(
        model.tokenizer, ["where is my order", "i want to cancel it and get a refund"], 32
    )
    input_ids, mask = pad_ids(ids, model.tokenizer.pad_token_id or 0)
    axes = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        # The TorchScript exporter is deprecated in favour of dynamo=True, which needs onnxscript
        # and emits a graph the BERT fusions match less well; this one needs only torch.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Probabilities().eval(),
            (torch.from_numpy(input_ids), torch.from_numpy(mask)),
            str(path),
            dynamo=False,
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes={**axes, OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET,
        )
    return model.net.encoder.config


def _optimise(raw: Path, out: Path, config: Any) -> dict[str, int]:
    """ONNX Runtime's BERT fusions, saved without hardware-specific rewrites (opt_level 0: the
    file runs on any CPU; the session adds its own optimisations when it loads)."""
    from onnxruntime.transformers.optimizer import optimize_model

    optimised = optimize_model(
        str(raw),
        model_type="bert",
        num_heads=int(config.num_attention_heads),
        hidden_size=int(config.hidden_size),
        opt_level=0,
    )
    optimised.save_model_to_file(str(out))
    stats = optimised.get_fused_operator_statistics()
    return {op: int(n) for op, n in sorted(stats.items()) if n}


def _quantise(fused: Path, out: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The quantiser tells the root logger to pre-process (shape inference + graph optimisation)
    # first: the transformer optimiser already did that part, so the advice is dropped here.
    advice = _DropMessage("Please consider to run pre-processing before quantization")
    logging.getLogger().addFilter(advice)
    try:
        quantize_dynamic(
            str(fused),
            str(out),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=list(QUANTIZED_OPS),
            # Shape inference cannot type the outputs of fused (com.microsoft) operators.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        logging.getLogger().removeFilter(advice)


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@dataclass
class OnnxIntentModel:
    """A loaded export: scores texts with ONNX Runtime, applies the out-of-scope threshold."""

    session: Any  # onnxruntime.InferenceSession (its run() is thread-safe)
    tokenizer: Any
    labels: list[str]
    threshold: float
    max_length: int
    variant: str
    oos_label: str = "out_of_scope"
    max_text_chars: int = 2000
    batch_size: int = 64

    def predict_proba(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        """Class probabilities (n, n_labels); texts are scored in length-sorted batches."""
        return batched_proba(
            self.tokenizer,
            clip_texts(texts, self.max_text_chars),
            self._score_batch,
            n_labels=len(self.labels),
            max_length=self.max_length,
            batch_size=self.batch_size,
            show_progress=show_progress,
        )

    def _score_batch(self, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        feed = dict(zip(INPUT_NAMES, (input_ids, mask), strict=True))
        return np.asarray(self.session.run([OUTPUT_NAME], feed)[0])

    def predict(self, texts: Sequence[Any]) -> pd.DataFrame:
        """Contract output (label, confidence, raw_label), as IntentModel.predict."""
        return predictions_frame(
            texts,
            self.predict_proba,
            labels=self.labels,
            threshold=self.threshold,
            oos_label=self.oos_label,
        )


def session_options(intra_op_threads: int | None = None) -> Any:
    """Options for a serving session: ``intra_op_threads`` threads inside one operator (None =
    ONNX Runtime's default, one per physical core), operators run one after another (a BERT
    graph is a chain: inter-op threads would only wait), every graph optimisation on."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if intra_op_threads is not None:
        options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: fused graphs make it chatty at load
    return options


def load_onnx_intent_model(
    folder: str | Path, *, intra_op_threads: int | None = None
) -> OnnxIntentModel:
    """Load a folder written by :func:`export` (e.g. downloaded from the run's artifacts)."""
    import onnxruntime as ort
    from transformers import AutoTokenizer

    folder = Path(folder)
    if not is_onnx_export(folder):
        raise InputError(f"{folder} is not an ONNX intent model folder (no {ONNX_FILE})")
    meta = read_meta(folder)
    session = ort.InferenceSession(
        str(folder / ONNX_FILE),
        sess_options=session_options(intra_op_threads),
        providers=["CPUExecutionProvider"],
    )
    return OnnxIntentModel(
        session=session,
        tokenizer=AutoTokenizer.from_pretrained(folder / "tokenizer"),
        labels=meta.labels,
        threshold=meta.threshold,
        max_length=meta.max_length,
        variant=str((meta.raw or {}).get("onnx", {}).get("variant", VARIANT_FP32)),
        oos_label=meta.oos_label,
        max_text_chars=meta.max_text_chars,
        batch_size=meta.batch_size,
    )
