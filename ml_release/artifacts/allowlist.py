"""Which types and node kinds a model file may name: the rule, and the spec's additions.

A skops file is a tree of nodes, each naming a node kind (how skops rebuilds it) and a type.
ml-release loads a file only when every node passes this rule (docs/models.md):

1. Node kinds: only data nodes (dicts, lists, tuples, sets, bytes, arrays, dtypes, types,
   objects rebuilt from their state, scikit-learn's tree and loss nodes, and `partial`
   wrappers, whose function is a node of its own). Function nodes name code: only reviewed
   scikit-learn functions (`REVIEWED_FUNCTIONS`: HistGradientBoosting with categorical
   features keeps `partial(check_array, ...)`) and functions the spec lists by name under
   `trusted_types:` are allowed. Method, operator and reduce-constructor nodes are refused.
2. Types, built in:
   - Python and numpy data types (`BUILTIN_TYPES`, numpy's scalar types);
   - public scikit-learn estimators and transformers that skops itself trusts (every class
     `sklearn.utils.all_estimators()` lists), and the scikit-learn internals skops trusts
     (losses, links, the histogram binner);
   - reviewed internals skops leaves out: decision-tree node arrays (`Tree`,
     `TreePredictor`) and the Cython losses behind the gradient-boosting losses. A crafted
     node array can crash `predict`; it is loaded only after the digest check, from the store;
   - XGBoost's and LightGBM's scikit-learn estimators and their `Booster`, whose state is
     the library's own model format, parsed by the library (`BOOSTING_TYPES`);
   - `ml_release.model.FeatureTransformer`.
3. Anything else only when the release spec lists its full name under `trusted_types:`; the
   manifest records which of those a model needed (`spec_trusted_types`).
"""

from collections.abc import Iterable

from skops.io._trusted_types import (
    NUMPY_DTYPE_TYPE_NAMES,
    SKLEARN_ESTIMATOR_TYPE_NAMES,
    SKLEARN_INTERNAL_TYPE_NAMES,
)

_BUILTINS = "bool bytearray bytes dict float int list set slice str tuple"
BUILTIN_TYPES = frozenset(f"builtins.{name}" for name in _BUILTINS.split()) | {
    "collections.OrderedDict",
    "collections.defaultdict",
}
NUMPY_TYPES = frozenset(
    {"numpy.dtype", "numpy.ndarray", "numpy.random._generator.Generator"}
    | set(NUMPY_DTYPE_TYPE_NAMES)
)
_CYTHON_LOSSES = (
    "AbsoluteError ExponentialLoss HalfBinomialLoss HalfGammaLoss HalfMultinomialLoss "
    "HalfPoissonLoss HalfSquaredError HuberLoss PinballLoss HalfTweedieLoss "
    "HalfTweedieLossIdentity"
)
# Reviewed: needed by fitted trees and gradient boosting, not trusted by skops by default.
REVIEWED_SKLEARN_TYPES = frozenset(
    {
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    }
    | {f"sklearn._loss._loss.Cy{name}" for name in _CYTHON_LOSSES.split()}
)
# The scikit-learn interfaces of XGBoost and LightGBM: the Booster's pickled state is the
# library's serialized model (XGBoost: its binary UBJSON buffer; LightGBM: its model text),
# which `Booster.__setstate__` hands to the library's own parser. See docs/models.md.
BOOSTING_TYPES = frozenset(
    {
        "xgboost.sklearn.XGBClassifier",
        "xgboost.sklearn.XGBRegressor",
        "xgboost.core.Booster",
        "lightgbm.sklearn.LGBMClassifier",
        "lightgbm.sklearn.LGBMRegressor",
        "lightgbm.basic.Booster",
    }
)
OWN_TYPES = frozenset({"ml_release.model.FeatureTransformer"})
# Functions scikit-learn stores inside fitted estimators, reviewed: input validation only.
REVIEWED_FUNCTIONS = frozenset({"sklearn.utils.validation.check_array"})
BUILT_IN = (
    BUILTIN_TYPES
    | NUMPY_TYPES
    | frozenset(SKLEARN_ESTIMATOR_TYPE_NAMES)
    | frozenset(SKLEARN_INTERNAL_TYPE_NAMES)
    | REVIEWED_SKLEARN_TYPES
    | BOOSTING_TYPES
    | OWN_TYPES
    | REVIEWED_FUNCTIONS
    | {"functools.partial"}
)
DATA_NODES = frozenset(
    {"BytearrayNode", "BytesNode", "CachedNode", "DefaultDictNode", "DictNode", "DTypeNode"}
    | {"JsonNode", "ListNode", "LossNode", "NdArrayNode", "ObjectNode", "RandomGeneratorNode"}
    | {"PartialNode", "SetNode", "SliceNode", "SparseMatrixNode", "TreeNode", "TupleNode"}
    | {"TypeNode"}
)
CODE_NODES = frozenset({"FunctionNode"})  # allowed only for a function the spec lists


def refused(nodes: Iterable[tuple[str, str]], trusted: Iterable[str] = ()) -> list[str]:
    """The (node kind, type) pairs of a file the rule refuses, as sorted readable names.

    Args:
        nodes: (node kind, full type name) of every node in the file.
        trusted: Full names the spec lists under `trusted_types:`.
    """
    extra = frozenset(trusted)
    out = set()
    for kind, name in nodes:
        if kind in CODE_NODES:
            if name not in extra and name not in REVIEWED_FUNCTIONS:
                out.add(f"{name} (a function: list it under trusted_types to allow it)")
        elif kind not in DATA_NODES:
            out.add(f"node kind {kind} ({name})")
        elif name not in BUILT_IN and name not in extra:
            out.add(name)
    return sorted(out)


def spec_trusted(nodes: Iterable[tuple[str, str]], trusted: Iterable[str]) -> list[str]:
    """The types of a file allowed only because the spec lists them (for the manifest)."""
    extra = frozenset(trusted)
    return sorted({name for _kind, name in nodes if name in extra and name not in BUILT_IN})
