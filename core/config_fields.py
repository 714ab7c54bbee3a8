"""Every setting, declared once: its default, type, allowed values, whether it shapes the prepared data, and a
line of help. `setting` puts these on the dataclass field; the tables the checks use are derived from the
fields. configs/default.yaml mirrors the defaults with longer comments."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


def setting(default: Any, *, help: str, choices: tuple[str, ...] | None = None, low: float | None = None,
            high: float | None = None, low_open: bool = False, high_open: bool = False, data: bool = False) -> Any:
    """A Config field: default, help, allowed values (choices, or a range low..high, each end inclusive unless
    open; None: unbounded) and data=True for the settings that determine the prepared data set."""
    return dataclasses.field(default=default, metadata={
        "help": help, "choices": choices, "range": None if low is None and high is None else (
            low, high, not low_open, not high_open), "data": data})


@dataclass(frozen=True)
class Config:
    # data
    data: str = setting("synthetic", data=True,
                        help="source: synthetic, an event log CSV/Parquet, a MovieLens-100K folder or a sequence .txt")
    data_format: str = setting("auto", choices=("auto", "synthetic", "events", "movielens", "sequences"), data=True,
                               help="how to read `data` (auto: told from the value)")
    user_col: str = setting("account_number", data=True, help="event log: the customer id column")
    time_col: str = setting("agreement_date", data=True, help="event log: the event time column")
    item_col: str = setting("model_number", data=True, help="event log: the item number column")
    description_1_col: str | None = setting("model_description_1", data=True,
                                            help="event log: the item's first description column, or null")
    description_2_col: str | None = setting("model_description_2", data=True,
                                            help="event log: the item's second description column, or null")
    synthetic_customers: int = setting(3000, low=10, data=True, help="synthetic data: number of customers")
    synthetic_items: int = setting(300, low=140, data=True,  # 26 pieces x 5 styles + 8 accessories at least
                                   help="synthetic data: approximate catalogue size")
    synthetic_seed: int = setting(0, data=True, help="synthetic data: generator seed (apart from `seed`)")
    min_user_events: int = setting(2, low=2, data=True, help="customers with fewer events are dropped")
    split: str = setting("time", choices=("time", "leave_one_out"), data=True,
                         help="time (at quantiles of event time) or leave_one_out (per customer)")
    val_quantile: float = setting(0.70, low=0.0, high=1.0, low_open=True, high_open=True, data=True,
                                  help="time split: training ends at this quantile of event time")
    test_quantile: float = setting(0.85, low=0.0, high=1.0, low_open=True, high_open=True, data=True,
                                   help="time split: test starts at this quantile of event time")
    time_format: str | None = setting(None, data=True,
                                      help="event log: strftime pattern of the times; null: ISO 8601 or numbers")
    drop_duplicates: bool = setting(True, data=True, help="drop repeated (customer, time, item) rows")
    # model
    max_seq_len: int = setting(20, low=1, help="longest history the model reads, in items")
    embed_dim: int = setting(128, low=1, help="item embedding size")
    hidden_dim: int = setting(64, low=1, help="LSTM hidden state size")
    num_layers: int = setting(1, low=1, help="stacked LSTM layers")
    dropout: float = setting(0.45, low=0.0, high=1.0, high_open=True,
                             help="dropout between LSTM layers and before the output layer")
    embed_dropout: float = setting(0.3, low=0.0, high=1.0, high_open=True, help="dropout on the item embeddings")
    markov_residual: bool = setting(False, help="add a learned weight times the last item's transition counts")
    markov_blend: float | str = setting("auto", help="weight of log p_markov in the ranking (auto: chosen on "
                                                     "validation; 0: off)")
    seen_items: str = setting("auto", choices=("auto", "keep", "last"),
                              help="the ranking of items the customer already had (auto: chosen on validation)")
    # training
    loss: str = setting("full", choices=("full", "sampled", "gbce", "auto"), help="training loss")
    negatives: int = setting(1000, low=1, help="sampled / gbce: negatives drawn per batch")
    sample_alpha: float = setting(0.5, low=0.0, high=1.0,
                                  help="sampled / gbce: negatives drawn by (training count + 1)^alpha")
    gbce_t: float = setting(0.75, low=0.0, high=1.0, help="gbce: calibration t")
    item_updates: str = setting("auto", choices=("auto", "lazy", "dense"),
                                help="sampled / gbce: the item tables' Adam: lazy (only the rows a batch touched, no "
                                     "weight decay) or dense (every row); auto: lazy from loss auto's catalogue size")
    sample_mode: str = setting("all_positions", choices=("all_positions", "prefix"),
                               help="a loss at every position of each window, or one per prefix")
    window_overlap: float = setting(0.75, low=0.0, high=1.0, high_open=True,
                                    help="all_positions: share of each window that is context only")
    batch_size: int = setting(64, low=1, help="windows or prefixes per optimiser step")
    batch_by_length: bool = setting(True, help="batches of windows of similar length")
    lr: float = setting(0.001, low=0.0, high=10.0, low_open=True,  # finite and bounded: beyond 10 Adam only diverges
                        help="Adam learning rate")
    weight_decay: float = setting(1e-5, low=0.0, high=10.0, help="Adam L2 penalty")
    epochs: int = setting(50, low=1, help="passes over the training data (at most, with patience)")
    patience: int = setting(3, low=0, help="stop after this many epochs without improvement (0: never)")
    ema_decay: float = setting(0.0, low=0.0, high=1.0, high_open=True,
                               help="decay of a moving average of the weights, evaluated and kept (0: off)")
    seed: int = setting(0, help="seed for weights, dropout and batch order")
    device: str = setting("auto", choices=("auto", "cpu", "cuda"), help="auto: a GPU if one is visible, else CPU")
    bf16: bool = setting(False, help="bf16 autocast for training on a GPU")
    threads: int | str = setting("auto", help="torch threads of one-config training, retrain and recommend")
    # evaluation
    ks: tuple[int, ...] = setting((5, 10, 20), help="cut-offs K of HR@K, MRR@K and NDCG@K")
    exclude_seen: bool = setting(False, help="rank only items the customer has not had before")
    eval_batch_size: int = setting(1024, low=1, help="targets scored at once during evaluation")
    val_sample: int = setting(0, low=0, help="validate on a seeded sample of this many targets (0: every target)")

    def to_dict(self) -> dict[str, Any]:
        """Plain, YAML-safe values (lists instead of tuples)."""
        out = dataclasses.asdict(self)
        out["ks"] = list(self.ks)
        return out

    def data_settings(self) -> dict[str, Any]:
        """The settings that determine the prepared data set (not the model or its training)."""
        return {key: getattr(self, key) for key in DATA_KEYS}


FIELDS = dataclasses.fields(Config)
FIELD_TYPES = {f.name: f.type for f in FIELDS}
DATA_KEYS = tuple(f.name for f in FIELDS if f.metadata["data"])
CHOICES = {f.name: f.metadata["choices"] for f in FIELDS if f.metadata["choices"]}
# (low, high, low_inclusive, high_inclusive); None means unbounded on that side.
RANGES = {f.name: f.metadata["range"] for f in FIELDS if f.metadata["range"]}
