"""Models saved in a framework's own file format, for ``mle export``: XGBoost JSON/UBJSON, LightGBM text,
CatBoost ``.cbm`` (and its JSON), Keras ``.keras`` (loaded in safe mode), and PyTorch ``.pt2`` archives
(``torch.export.save``). The first four hold data, not code, so loading them runs nothing; a ``.pt2`` may
hold pickled tensors that ``torch.export.load`` unpickles (see ``CODE_RUNNING``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PEEK_BYTES = 4096
# Formats whose loader can run code stored in the file: export only files you trust.
CODE_RUNNING = {"pytorch"}
_CATBOOST_CLASSIFIER_LOSSES = {
    "Logloss",
    "CrossEntropy",
    "MultiClass",
    "MultiClassOneVsAll",
    "MultiLogloss",
    "MultiCrossEntropy",
}


def native_format(path: Path) -> str | None:
    """'xgboost', 'lightgbm', 'catboost', 'keras' or 'pytorch' when the file is in that framework's own
    format, else None."""
    suffix = path.suffix.lower()
    if suffix == ".pt2":
        return "pytorch"
    if suffix == ".ubj":
        return "xgboost"
    if suffix == ".keras":
        return "keras"
    if suffix == ".cbm":
        return "catboost"
    with path.open("rb") as f:
        head = f.read(PEEK_BYTES)
    if head.startswith(b"tree\n") or head.startswith(b"tree\r\n"):
        return "lightgbm"
    if suffix == ".json" and head.lstrip().startswith(b"{"):
        # Both write their top-level keys in a fixed order, the telling one first: no need to parse a
        # model of hundreds of MB twice (here and in the framework).
        if b'"learner"' in head:
            return "xgboost"
        if b'"features_info"' in head or b'"oblivious_trees"' in head or b'"ctr_data"' in head:
            return "catboost"  # (a model with categorical features writes its counter tables first)
    return None


def load_native(path: Path, framework: str) -> Any:
    """The model in ``path`` as its framework's Python object."""
    if framework == "xgboost":
        import xgboost

        return xgboost.Booster(model_file=str(path))
    if framework == "lightgbm":
        import lightgbm

        return lightgbm.Booster(model_file=str(path))
    if framework == "pytorch":
        import torch

        return torch.export.load(path)
    if framework == "keras":
        import keras

        # safe_mode refuses to deserialize code (Lambda layers); the .keras file is config and weights
        return keras.models.load_model(path, compile=False, safe_mode=True)
    import catboost

    fmt = "json" if path.suffix.lower() == ".json" else "cbm"
    probe = catboost.CatBoost().load_model(str(path), format=fmt)
    loss = str(probe.get_all_params().get("loss_function", "RMSE")).split(":")[0]
    cls = catboost.CatBoostClassifier if loss in _CATBOOST_CLASSIFIER_LOSSES else catboost.CatBoostRegressor
    return cls().load_model(str(path), format=fmt)
