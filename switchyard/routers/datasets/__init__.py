"""Routing data: one in-memory shape (:class:`RoutingDataset`) and loaders for the public
formats (RouterDC, RouterBench, RouteLLM) plus a generic JSONL one.

The reference data lives outside the repository (``$SWITCHYARD_DATA_DIR``, default
``../shared/data``); relative paths resolve there when they do not exist as given."""

from .core import RoutingDataset, concat
from .errors import DatasetFormatError
from .jsonl import load_jsonl
from .loaders import detect_format, load_dataset, load_datasets
from .paths import data_dir, resolve_data_path
from .prices import Price, load_prices
from .routellm import load_routellm
from .routerbench import load_routerbench
from .routerdc import load_routerdc

__all__ = [
    "DatasetFormatError",
    "Price",
    "RoutingDataset",
    "concat",
    "data_dir",
    "detect_format",
    "load_dataset",
    "load_datasets",
    "load_jsonl",
    "load_prices",
    "load_routellm",
    "load_routerbench",
    "load_routerdc",
    "resolve_data_path",
]
