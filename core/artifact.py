"""A trained model as one self-contained file: weights, the config that built it, the item catalogue and the
customers' histories, so that recommending needs no training data. Stored with torch.save as tensors and
plain values only, and loaded with weights_only=True: loading never unpickles arbitrary objects. Integer ids
are int64 tensors (as in every model saved before text ids existed); text ids are lists of str, and
`id_types` records which (models without it have integer ids).
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from core.config import Config, build_config
from core.data import PreparedData
from core.errors import DataError
from core.ids import id_type
from core.integrity import check_folder, write_manifest
from core.model import LSTMRecommender

MODEL_FILE = "model.pt"
FORMAT_VERSION = 1


@dataclass
class SavedModel:
    model: LSTMRecommender
    config: Config
    catalog: pd.DataFrame        # item_id, item_number, description_1, description_2
    user_ids: np.ndarray         # (U,) customer ids, sorted
    user_start: np.ndarray       # (U + 1,) offsets into items
    items: np.ndarray            # (E,) every customer's item ids in time order
    info: dict[str, Any]


def save_model(folder: str | Path, model: LSTMRecommender, config: Config, data: PreparedData,
               info: dict[str, Any] | None = None) -> Path:
    """Write folder/model.pt; returns its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    catalog = data.catalog
    payload = {
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "item_numbers": _saved_ids(catalog["item_number"].to_numpy()),
        "description_1": [str(d) for d in catalog["description_1"]],
        "description_2": [str(d) for d in catalog["description_2"]],
        "user_ids": _saved_ids(data.user_ids),
        "id_types": {"customer": id_type(data.user_ids), "item": id_type(catalog["item_number"].to_numpy())},
        "user_start": torch.tensor(np.asarray(data.user_start, dtype=np.int64)),
        "items": torch.tensor(np.asarray(data.items, dtype=np.int64)),
        "info": dict(info or {}, data_fingerprint=data.fingerprint()),
    }
    path = folder / MODEL_FILE
    torch.save(payload, path)
    write_manifest(folder, [MODEL_FILE])  # retrain adds its report and metrics
    return path


def finite_weights(state: dict[str, Any], path: Path) -> None:
    """Refuse weights holding NaN or infinity (they rank nothing), naming the tensor."""
    for name, value in state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
            raise DataError(f"{path}: weight {name} holds NaN or infinite values; retrain")


def load_model(folder: str | Path, device: str = "cpu") -> SavedModel:
    """Rebuild the model saved by save_model (folder or the model.pt file itself)."""
    path = Path(folder)
    path = path / MODEL_FILE if path.is_dir() else path
    if not path.is_file():
        raise DataError(f"no saved model at {path} (retrain first: python -m search.retrain results/<name>)")
    check_folder(path.parent, path.name)
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as err:
        if "not an allowed global" not in str(err) and "Unsupported global" not in str(err):
            raise DataError(f"{path} is not a model saved by this project: not a torch file (damaged, or "
                            "another format)") from None
        # objects beyond tensors and plain values: never loaded, and no advice to load them unsafely
        raise DataError(f"{path} is not a model saved by this project: it holds Python objects other than "
                        "tensors and plain values, and loading those could run code; retrain to get a model.pt "
                        "made by this project") from None
    except Exception as err:  # a corrupt or foreign file: say which
        raise DataError(f"{path} is not a model saved by this project ({type(err).__name__}: "
                        f"{str(err).strip().splitlines()[0] if str(err).strip() else 'unreadable'})") from None
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{path} is not a model saved by this project (format version "
                        f"{payload.get('format_version') if isinstance(payload, dict) else '?'})")
    config = build_config(payload["config"], source=str(path))
    n_items = len(payload["item_numbers"])
    state = payload["state_dict"]
    finite_weights(state, path)
    model = LSTMRecommender.from_config(config, n_items, markov_blend="blend_weight" in state)
    if "markov_indptr" in state:  # the table's size is the data's, not the model's
        model.set_markov_table(state["markov_indptr"], state["markov_follower"], state["markov_count"])
    model.load_state_dict(state)
    model.to(device).eval()
    catalog = pd.DataFrame({
        "item_id": np.arange(1, n_items + 1),
        "item_number": _loaded_ids(payload["item_numbers"]),
        "description_1": payload["description_1"],
        "description_2": payload["description_2"],
    })
    return SavedModel(model=model, config=config, catalog=catalog, user_ids=_loaded_ids(payload["user_ids"]),
                      user_start=payload["user_start"].numpy(), items=payload["items"].numpy(),
                      info=payload["info"])


def _saved_ids(ids: np.ndarray) -> torch.Tensor | list[str]:
    """Integer ids as an int64 tensor; text ids as a list of str (a plain value weights_only loads)."""
    if id_type(ids) == "integer":
        return torch.tensor(np.asarray(ids, dtype=np.int64))
    return [str(i) for i in ids]


def _loaded_ids(saved: torch.Tensor | list[str]) -> np.ndarray:
    return saved.numpy() if isinstance(saved, torch.Tensor) else np.array(saved, dtype=object)
