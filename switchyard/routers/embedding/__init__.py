"""Prompt embedders for the learned routers: a static table distilled from all-MiniLM-L6-v2
(the default: a lookup and a mean), and all-MiniLM-L6-v2 itself, exported once to ONNX (int8,
per-channel) and run on ONNX Runtime; plus the reference, the prompt text and truncation
policy, and a disk cache of embeddings.

Importing this package loads neither torch, onnxruntime nor sentence-transformers: they are
imported when an embedder is built or exported.
"""

from switchyard.routers.embedding.base import (
    Embedder,
    EmbedderMismatchError,
    Embeddings,
    check_embedder,
)
from switchyard.routers.embedding.cache import (
    KINDS,
    EmbedderUnavailableError,
    cache_dir,
    dim_of,
    embed_cached,
    embeddings_dir,
    kind_of,
    load_embedder,
    text_digests,
)
from switchyard.routers.embedding.export import EMBEDDER_NAME, EMBEDDING_DIM, export_onnx, model_dir
from switchyard.routers.embedding.onnx import OnnxEmbedder
from switchyard.routers.embedding.reference import SentenceTransformerEmbedder
from switchyard.routers.embedding.static import StaticEmbedder, distill_static, static_name
from switchyard.routers.embedding.text import (
    HEAD_TOKENS,
    MAX_TOKENS,
    PromptTokenizer,
    content_text,
    prompt_text,
    truncate_ids,
)

__all__ = [
    "EMBEDDER_NAME",
    "EMBEDDING_DIM",
    "HEAD_TOKENS",
    "KINDS",
    "MAX_TOKENS",
    "Embedder",
    "EmbedderMismatchError",
    "EmbedderUnavailableError",
    "Embeddings",
    "OnnxEmbedder",
    "PromptTokenizer",
    "SentenceTransformerEmbedder",
    "StaticEmbedder",
    "cache_dir",
    "check_embedder",
    "content_text",
    "dim_of",
    "distill_static",
    "embed_cached",
    "embeddings_dir",
    "export_onnx",
    "kind_of",
    "load_embedder",
    "model_dir",
    "prompt_text",
    "static_name",
    "text_digests",
    "truncate_ids",
]
