"""Request-body schemas for the OpenAPI document (docs and schemathesis only).

The hot path does not validate against these (see ``switchyard.gateway.payload``); they describe the
fields the gateway and its backends understand. Unknown fields are allowed and passed on.
"""

from __future__ import annotations

from typing import Any

from switchyard.gateway.settings import Capability

_TEXT_OR_PARTS = {
    "anyOf": [
        {"type": "string"},
        {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["type", "text"],
                "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
            },
        },
        {"type": "null"},
    ]
}

_TEXT_OR_TEXTS = {
    "anyOf": [{"type": "string"}, {"type": "array", "minItems": 1, "items": {"type": "string"}}]
}

_MESSAGE = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {
        "role": {"enum": ["system", "developer", "user", "assistant", "tool"]},
        "content": _TEXT_OR_PARTS,
        "name": {"type": "string"},
        "tool_call_id": {"type": "string"},
    },
}

_SAMPLING: dict[str, Any] = {
    "model": {"type": "string", "description": "A model from GET /v1/models."},
    "stream": {"type": "boolean", "default": False},
    "stream_options": {
        "type": "object",
        "properties": {"include_usage": {"type": "boolean"}},
    },
    "max_tokens": {"type": "integer", "minimum": 1, "maximum": 4096},
    "temperature": {"type": "number", "minimum": 0, "maximum": 2},
    "top_p": {"type": "number", "minimum": 0, "maximum": 1},
    "n": {"type": "integer", "const": 1},
    "seed": {"type": "integer"},
    "stop": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    "user": {"type": "string"},
}

_BODIES: dict[Capability, dict[str, Any]] = {
    Capability.chat: {
        "type": "object",
        "required": ["model", "messages"],
        "properties": {
            **_SAMPLING,
            "messages": {"type": "array", "minItems": 1, "items": _MESSAGE},
            "tools": {"type": "array", "items": {"type": "object"}},
            "tool_choice": {"anyOf": [{"enum": ["none", "auto", "required"]}, {"type": "object"}]},
        },
    },
    Capability.completions: {
        "type": "object",
        "required": ["model", "prompt"],
        "properties": {
            **_SAMPLING,
            "prompt": {
                "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
            },
        },
    },
    Capability.embeddings: {
        "type": "object",
        "required": ["model", "input"],
        "properties": {
            "model": _SAMPLING["model"],
            "input": {
                "anyOf": [
                    {"type": "string"},
                    {"type": "array", "minItems": 1, "items": {"type": "string"}},
                ]
            },
            "encoding_format": {"enum": ["float"]},
        },
    },
    Capability.rerank: {
        "type": "object",
        "required": ["model", "query", "documents"],
        "properties": {
            "model": _SAMPLING["model"],
            "query": {"type": "string"},
            "documents": {"type": "array", "minItems": 1, "items": {"type": "string"}},
            "top_n": {"type": "integer", "minimum": 0},
            "truncate_prompt_tokens": {"type": "integer", "minimum": -1},
        },
    },
    Capability.score: {
        "type": "object",
        "required": ["model", "text_1", "text_2"],
        "properties": {
            "model": _SAMPLING["model"],
            "text_1": _TEXT_OR_TEXTS,
            "text_2": _TEXT_OR_TEXTS,
            "truncate_prompt_tokens": {"type": "integer", "minimum": -1},
        },
    },
}

# A transcription is a multipart form (OpenAI's audio API); its ``file`` is the audio.
_TRANSCRIPTION = {
    "type": "object",
    "required": ["file", "model"],
    "properties": {
        "file": {"type": "string", "format": "binary"},
        "model": _SAMPLING["model"],
        "language": {"type": "string"},
        "prompt": {"type": "string"},
        "response_format": {"enum": ["json", "text"]},
        "temperature": {"type": "number", "minimum": 0, "maximum": 1},
    },
}

REQUEST_SCHEMAS: dict[Capability, dict[str, Any]] = {
    cap: {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
    }
    for cap, body in _BODIES.items()
}
REQUEST_SCHEMAS[Capability.transcriptions] = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": _TRANSCRIPTION}},
    }
}
