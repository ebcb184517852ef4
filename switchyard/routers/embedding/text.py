"""What a router embeds: the prompt text built from a chat request, and how long prompts are cut.

Text policy (:func:`prompt_text`): the system prompt(s) (``system`` and ``developer`` roles, in
order) followed by the *last* user turn, joined by blank lines. Earlier user turns and assistant
and tool turns are left out: the last user turn is what the model is asked to do now, and the
system prompt says how. Message content may be a string or a list of parts; only the parts of
type ``"text"`` count.

Token policy (:class:`PromptTokenizer`): MiniLM sees at most ``max_tokens`` = 256 tokens,
[CLS] and [SEP] included. The text is tokenised in full, without special tokens; if it has more
than ``max_tokens - 2`` tokens, the first ``head`` = 128 and the last ``tail = max_tokens - 2 -
head`` = 126 tokens are kept and the middle is dropped, then [CLS] and [SEP] are added. The head
holds the instructions and the start of the question, the tail the actual ask and the answer
format; the middle of long prompts is usually pasted context. Cutting token ids (not characters)
makes the limit exact. Prompts up to 254 tokens are encoded exactly as sentence-transformers
does; longer ones differ from it on purpose (it keeps the first 254 tokens only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from switchyard.routers.embedding.wordpiece import FastWordPiece

MAX_TOKENS = 256
"""all-MiniLM-L6-v2's configured ``max_seq_length``, special tokens included."""
HEAD_TOKENS = 128
"""Tokens kept from the start of a long prompt; the rest of the budget goes to its end."""
SYSTEM_ROLES = ("system", "developer")


def content_text(content: object) -> str:
    """The text of one message's ``content``: a string, or the ``text`` parts of a list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        texts = [
            str(part.get("text") or "")
            for part in content
            if isinstance(part, Mapping) and part.get("type") == "text"
        ]
        return "\n".join(t for t in texts if t)
    raise TypeError(f"message content must be a string or a list of parts, not {type(content)}")


def prompt_text(messages: Sequence[Mapping[str, Any]] | str) -> str:
    """The text a router embeds for a chat request: system prompt(s) plus the last user turn."""
    if isinstance(messages, str):
        return messages
    if len(messages) == 1 and isinstance(only := messages[0], dict):  # the common case
        content = only.get("content")
        if only.get("role") == "user" and isinstance(content, str):
            return content if content.strip() else ""
    parts = [content_text(m.get("content")) for m in messages if m.get("role") in SYSTEM_ROLES]
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    if last_user is not None:
        parts.append(content_text(last_user.get("content")))
    return "\n\n".join(p for p in parts if p.strip())


def truncate_ids(
    ids: Sequence[int], *, max_tokens: int = MAX_TOKENS, head: int = HEAD_TOKENS, specials: int = 2
) -> list[int]:
    """Keep the first ``head`` and the last ``max_tokens - specials - head`` of ``ids`` (token
    ids without special tokens) when they do not fit in ``max_tokens - specials``."""
    budget = max_tokens - specials
    if not 0 <= head <= budget:
        raise ValueError(f"head must be between 0 and {budget}, got {head}")
    if len(ids) <= budget:
        return list(ids)
    tail = budget - head
    return [*ids[:head], *ids[len(ids) - tail :]]


class PromptTokenizer:
    """The model's WordPiece tokenizer with the head + tail truncation policy above."""

    def __init__(
        self, tokenizer_json: Path, *, max_tokens: int = MAX_TOKENS, head: int = HEAD_TOKENS
    ) -> None:
        tokenizer = Tokenizer.from_file(str(tokenizer_json))
        tokenizer.no_truncation()  # the file asks for 128 tokens, padded: both are done here
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
        if cls_id is None or sep_id is None:
            raise ValueError(f"{tokenizer_json} has no [CLS]/[SEP] tokens: not a BERT tokenizer")
        self.cls_id, self.sep_id = cls_id, sep_id
        self.pad_id = tokenizer.token_to_id("[PAD]") or 0
        truncate_ids([], max_tokens=max_tokens, head=head)  # validates the limits
        self.max_tokens = max_tokens
        self.head = head
        unk = tokenizer.token_to_id("[UNK]")
        self._fast = None if unk is None else FastWordPiece(tokenizer.get_vocab(), unk)

    @property
    def vocab_size(self) -> int:
        return int(self._tokenizer.get_vocab_size())

    def content_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text in full, without special tokens (ASCII, CJK and
        punctuation by the fast path of :mod:`~switchyard.routers.embedding.wordpiece`, the
        rest by the ``tokenizers`` library)."""
        fast = self._fast
        out = [None if fast is None else fast.ids(t) for t in texts]
        rest = [i for i, ids in enumerate(out) if ids is None]
        if len(rest) == 1:  # encode_batch's thread pool costs more than it saves for one
            out[rest[0]] = self._tokenizer.encode(texts[rest[0]], add_special_tokens=False).ids
        elif rest:
            encoded = self._tokenizer.encode_batch(
                [texts[i] for i in rest], add_special_tokens=False
            )
            for i, e in zip(rest, encoded, strict=True):
                out[i] = e.ids
        return [ids or [] for ids in out]

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Model input ids of each text: truncated by the policy, with [CLS] and [SEP]."""
        return [
            [
                self.cls_id,
                *truncate_ids(ids, max_tokens=self.max_tokens, head=self.head),
                self.sep_id,
            ]
            for ids in self.content_ids(texts)
        ]
