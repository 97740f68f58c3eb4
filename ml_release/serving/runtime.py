"""The `ml_release` MLServer runtime: skops artifacts through the registry's safe loader.

Runs inside the serving runtime's environment (it imports `mlserver`, which the orchestration
environment does not have). Configured by `model-settings.json`:

    {"name": "credit_default", "implementation": "ml_release.serving.runtime.SkopsRuntime",
     "parameters": {"uri": "<artifact folder>",
                    "extra": {"store_root": "<artifacts dir>", "max_rows": 10000}}}

Requests follow the Open Inference Protocol (V2): one input per raw column the model expects
(shape `[n]`; numbers as FP64/INT64, categories as BYTES, `null` for missing). A classifier's
response has `label` and one `proba_<class>` output per class; a regressor's has `prediction`.
A bad request is a 400 whose JSON `error` names the input at fault; the model keeps serving.
Types the release spec trusts beyond the built-in allow-list come in `extra.trusted_types`
(written by ml-release from the spec, never from the artifact).
"""

import importlib.metadata
import platform
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlserver import MLModel
from mlserver.errors import InferenceError, MLServerError
from mlserver.types import (
    InferenceRequest,
    InferenceResponse,
    MetadataModelResponse,
    MetadataTensor,
    Parameters,
    ResponseOutput,
)

from ml_release.artifacts.manifest import Manifest, read_manifest
from ml_release.artifacts.skops_io import load_model

NUMERIC_DATATYPES = frozenset(
    {"BOOL", "FP16", "FP32", "FP64"}
    | {f"{sign}INT{bits}" for sign in ("", "U") for bits in (8, 16, 32, 64)}
)
LABEL_DATATYPES = {bool: "BOOL", int: "INT64", float: "FP64", str: "BYTES"}
RUNTIME_LIBRARIES = ("scikit-learn", "skops", "numpy", "pandas", "mlserver")
DEFAULT_MAX_ROWS = 10_000


def runtime_versions() -> dict[str, str]:
    """Versions of Python and the libraries a model meets in this runtime."""
    versions = {"python": platform.python_version()}
    for library in RUNTIME_LIBRARIES:
        versions[library.replace("-", "_")] = importlib.metadata.version(library)
    return versions


def _column(position: int, request_input: Any, kind: str, rows: int) -> Any:
    where = f"inputs[{position}] ({request_input.name!r})"
    shape = list(request_input.shape)
    if shape not in ([rows], [rows, 1]):
        raise InferenceError(f"{where}: shape {shape}, expected [{rows}] like the other inputs")
    data = list(request_input.data)
    if len(data) == 1 and isinstance(data[0], list):  # nested [[...]] for shape [n, 1]
        data = data[0]
    if len(data) != rows:
        raise InferenceError(f"{where}: {len(data)} values for shape {shape}")
    if kind == "numeric":
        if request_input.datatype not in NUMERIC_DATATYPES:
            raise InferenceError(
                f"{where}: datatype {request_input.datatype}, expected a number type (FP64, "
                "INT64, ...): this column is numeric"
            )
        try:
            return np.array([np.nan if v is None else v for v in data], dtype=np.float64)
        except (TypeError, ValueError):
            raise InferenceError(f"{where}: holds values that are not numbers") from None
    if request_input.datatype != "BYTES":
        raise InferenceError(
            f"{where}: datatype {request_input.datatype}, expected BYTES: this column is "
            "categorical"
        )
    values = [v.decode() if isinstance(v, bytes) else v for v in data]
    if any(v is not None and not isinstance(v, str) for v in values):
        raise InferenceError(f"{where}: holds values that are not strings")
    return np.array(values, dtype=object)


def decode_rows(request: InferenceRequest, manifest: Manifest, max_rows: int) -> pd.DataFrame:
    """The raw rows of a V2 request, checked against the columns the model expects."""
    if not request.inputs:
        raise InferenceError("inputs: empty; send one input per column the model expects")
    by_name = {}
    for position, request_input in enumerate(request.inputs):
        if request_input.name in by_name:
            raise InferenceError(f"inputs[{position}]: {request_input.name!r} appears twice")
        by_name[request_input.name] = position
    expected = {feature.name: feature.dtype for feature in manifest.features}
    missing = [name for name in expected if name not in by_name]
    if missing:
        raise InferenceError(
            f"inputs: missing field(s) {', '.join(map(repr, missing))}; the model expects "
            f"{', '.join(expected)}"
        )
    first = request.inputs[0]
    rows = int(first.shape[0]) if first.shape else 0
    if rows == 0:
        raise InferenceError(f"inputs[0] ({first.name!r}): empty batch (shape {first.shape})")
    if rows > max_rows:
        raise InferenceError(
            f"inputs[0] ({first.name!r}): {rows} rows, more than max_rows={max_rows}; "
            "split the batch"
        )
    return pd.DataFrame(
        {
            name: _column(by_name[name], request.inputs[by_name[name]], kind, rows)
            for name, kind in expected.items()
        }
    )


class SkopsRuntime(MLModel):
    """Serves one verified skops artifact."""

    async def load(self) -> bool:
        """Verify and load the artifact; loader warnings are recorded for the metadata."""
        parameters = self.settings.parameters
        extra = dict(parameters.extra or {})
        folder = Path(parameters.uri)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trusted = list(extra.get("trusted_types") or [])
            self._model = load_model(
                folder, Path(extra["store_root"]), trusted=trusted, digest=extra.get("sha256")
            )
        self._manifest = read_manifest(folder)
        self._max_rows = int(extra.get("max_rows", DEFAULT_MAX_ROWS))
        # Every warning while loading (scikit-learn's InconsistentVersionWarning above all)
        # is reported: runtime_compatible treats them as failures.
        self._load_warnings = [f"{w.category.__name__}: {w.message}" for w in caught]
        schema = self._manifest.output_schema
        self._classes = list(getattr(self._model, "classes_", [])) if schema.classes else []
        self.inputs = [
            MetadataTensor(
                name=f.name, datatype="FP64" if f.dtype == "numeric" else "BYTES", shape=[-1]
            )
            for f in self._manifest.features
        ]
        self.outputs = (
            [MetadataTensor(name=schema.prediction_column, datatype="FP64", shape=[-1])]
            if schema.prediction_column
            else [
                MetadataTensor(name="label", datatype=self._label_datatype(), shape=[-1]),
                *(
                    MetadataTensor(name=column, datatype="FP64", shape=[-1])
                    for column in schema.probability_columns
                ),
            ]
        )
        return True

    def _label_datatype(self) -> str:
        kind = type(self._classes[0].item() if hasattr(self._classes[0], "item") else None)
        return LABEL_DATATYPES.get(kind, "BYTES")

    async def metadata(self) -> MetadataModelResponse:
        """V2 metadata, plus what the release checks compare: versions, warnings, classes."""
        response = await super().metadata()
        response.parameters = Parameters(
            ml_release={
                "runtime_versions": runtime_versions(),
                "load_warnings": self._load_warnings,
                "artifact_version": self._manifest.version,
                "artifact_sha256": self._manifest.sha256,
                "classes": [c.item() if hasattr(c, "item") else c for c in self._classes],
                "features": [f.model_dump() for f in self._manifest.features],
            }
        )
        return response

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        """Label and class probabilities (a regressor: the prediction) for every row."""
        frame = decode_rows(payload, self._manifest, self._max_rows)
        column = self._manifest.output_schema.prediction_column
        try:
            if column:
                values = np.asarray(self._model.predict(frame), dtype=np.float64).reshape(-1)
            else:
                probabilities = np.asarray(self._model.predict_proba(frame), dtype=np.float64)
        except Exception as exc:  # the team's feature code or model: say what it said
            raise MLServerError(
                f"the model failed on this request: {type(exc).__name__}: {exc}", 500
            ) from exc
        if column:
            output = ResponseOutput(
                name=column,
                shape=[len(frame)],
                datatype="FP64",
                data=[None if not np.isfinite(v) else float(v) for v in values],
            )
            return InferenceResponse(
                model_name=self.name, model_version=self._manifest.version, outputs=[output]
            )
        labels = np.asarray(self._classes, dtype=object)[probabilities.argmax(axis=1)]
        rows = len(frame)
        outputs = [
            ResponseOutput(
                name="label",
                shape=[rows],
                datatype=self._label_datatype(),
                data=[v.item() if hasattr(v, "item") else v for v in labels],
            )
        ]
        for index, column in enumerate(self._manifest.output_schema.probability_columns):
            outputs.append(
                ResponseOutput(
                    name=column,
                    shape=[rows],
                    datatype="FP64",
                    data=probabilities[:, index].tolist(),
                )
            )
        return InferenceResponse(
            model_name=self.name, model_version=self._manifest.version, outputs=outputs
        )
