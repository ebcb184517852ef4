"""``switchyard outcomes export``: routed requests' outcome records (and feedback) as JSONL.

The records come from the Redis stream the gateways write to when ``state.redis_url`` is set
(every replica's records, oldest first), or else from one running gateway's in-memory ring
buffer through its admin API (``GET /admin/outcomes``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import IO, Annotated, Any

import orjson
import typer

from switchyard.cli.common import fail

outcomes_app = typer.Typer(
    help="Outcome records of routed requests.", no_args_is_help=True, add_completion=False
)
CHUNK = 1000
KindOpt = Annotated[
    str,
    typer.Option(
        help="outcome, feedback, shadow or all (feedback and shadow entries exist in Redis "
        "only; a gateway's records carry their shadow outputs themselves)."
    ),
]
FormatOpt = Annotated[
    str,
    typer.Option(
        "--format",
        help="records: the entries as stored; outputs: one line per shadowed decision, every "
        "model's answer to its prompt, for `switchyard train --label-free`.",
    ),
]


def stream_entries(
    url: str, prefix: str, kind: str, limit: int | None, mode: str = "auto"
) -> Iterator[dict[str, Any]]:
    """The outcome stream's entries, oldest first, each with its ``stream_id`` and ``kind``
    (any topology ``state.redis_url`` may name: one server, Redis Cluster, Sentinel)."""
    import redis
    from tqdm import tqdm

    from switchyard.gateway.redis_client import KeyTags, connect_sync, parse_target, redact

    try:
        client = connect_sync(parse_target(url, mode), 10.0)
    except ValueError as err:
        raise fail(str(err)) from None
    key = KeyTags(prefix, spread=False).tag() + ":outcomes"  # one stream, on any topology
    try:
        length: Any = client.xlen(key)
        total = int(length)
    except (redis.ConnectionError, redis.TimeoutError, OSError) as err:
        raise fail(f"cannot read {key} from {redact(url)}: {err}") from None
    total = min(total, limit) if limit is not None else total
    start, sent = "-", 0
    with tqdm(total=total, unit="entry", desc="export", file=sys.stderr, leave=False) as bar:
        while limit is None or sent < limit:
            batch: Any = client.xrange(key, min=start, max="+", count=CHUNK)
            if not batch:
                return
            for entry_id, fields in batch:
                bar.update(1)
                entry_kind = fields[b"kind"].decode()
                if kind not in ("all", entry_kind):
                    continue
                data = orjson.loads(fields[b"data"])
                yield {"stream_id": entry_id.decode(), "kind": entry_kind, **data}
                sent += 1
                if limit is not None and sent >= limit:
                    return
            start = "(" + batch[-1][0].decode()


def gateway_entries(url: str, admin_key: str, limit: int | None) -> Iterator[dict[str, Any]]:
    """A gateway's in-memory outcome records (its admin API), oldest first."""
    import httpx

    try:
        reply = httpx.get(
            f"{url.rstrip('/')}/admin/outcomes",
            params={"limit": limit or 100_000},
            headers={"authorization": f"Bearer {admin_key}"},
            timeout=30,
        )
    except httpx.HTTPError as err:
        raise fail(f"cannot reach {url}: {err}") from None
    if reply.status_code != 200:
        raise fail(f"{url}/admin/outcomes answered {reply.status_code}: {reply.text[:300]}")
    for line in reply.content.splitlines():
        if line.strip():
            yield {"kind": "outcome", **orjson.loads(line)}


@outcomes_app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", "-o", help="JSONL file to write; - for stdout.")],
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Gateway config: its state.redis_url and key prefix."),
    ] = None,
    redis_url: Annotated[
        str | None, typer.Option(help="Read this Redis instead of the config's.")
    ] = None,
    key_prefix: Annotated[str, typer.Option(help="Key prefix (state.key_prefix).")] = "switchyard",
    gateway: Annotated[
        str | None,
        typer.Option(help="Without Redis: a running gateway's URL (needs the admin key)."),
    ] = None,
    admin_key_env: Annotated[
        str, typer.Option(help="Environment variable holding the admin key.")
    ] = "SWITCHYARD_ADMIN_KEY",
    kind: KindOpt = "all",
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many entries.")] = None,
    fmt: FormatOpt = "records",
) -> None:
    """Write outcome records as JSON lines: decision id, router, candidates with predicted
    quality and cost, chosen model, endpoint, tokens, cost, latency, TTFT, status; with
    ``--format outputs``, the shadow outputs (shadow mode) in the outputs JSONL format."""
    from switchyard.gateway.settings import SettingsError, load_settings

    if kind not in ("outcome", "feedback", "shadow", "all"):
        raise fail("--kind must be outcome, feedback, shadow or all")
    if fmt not in ("records", "outputs"):
        raise fail("--format must be records or outputs")
    mode = "auto"
    if config is not None and redis_url is None:
        try:
            settings = load_settings(config)
        except SettingsError as err:
            raise fail(str(err)) from None
        redis_url, key_prefix = settings.state.redis_url, settings.state.key_prefix
        mode = settings.state.mode
    if redis_url is not None:
        entries = stream_entries(redis_url, key_prefix, kind, limit, mode)
    elif gateway is not None:
        admin_key = os.environ.get(admin_key_env)
        if not admin_key:
            raise fail(f"--gateway needs the admin key in ${admin_key_env}")
        entries = gateway_entries(gateway, admin_key, limit)
    else:
        raise fail("give --redis-url, a --config with state.redis_url, or --gateway")
    _write(entries if fmt == "records" else outputs_rows(entries), out)


def outputs_rows(entries: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Shadowed decisions in the outputs JSONL format that ``switchyard train --label-free``
    reads (``switchyard.routers.datasets.outputs``): a Redis stream's ``shadow`` entries, or
    a gateway's records that carry outputs; each decision once, the task its router's name."""
    seen: set[str] = set()
    for entry in entries:
        outputs, decision = entry.get("outputs"), str(entry.get("decision_id"))
        if not outputs or entry.get("prompt") is None or entry.get("kind") == "feedback":
            continue
        if decision in seen:  # written twice after a failed flush (redis_state.py)
            continue
        seen.add(decision)
        costs = {m: o["cost_usd"] for m, o in outputs.items() if o.get("cost_usd") is not None}
        tokens = {m: o["usage"]["completion_tokens"] for m, o in outputs.items() if o.get("usage")}
        yield {
            "id": decision,
            "task": entry.get("router"),
            "prompt": entry["prompt"],
            "outputs": {m: o.get("text") for m, o in outputs.items()},
            "costs": costs,
            "output_tokens": tokens,
        }


def _write(entries: Iterator[dict[str, Any]], out: Path) -> None:
    n = 0
    target: Any = nullcontext(sys.stdout.buffer) if str(out) == "-" else out.open("wb")
    with target as fh:
        sink: IO[bytes] = fh
        for entry in entries:
            sink.write(orjson.dumps(entry) + b"\n")
            n += 1
    typer.echo(f"wrote {n} entries to {out}", err=True)


def register(app: typer.Typer) -> None:
    """Add the ``switchyard outcomes`` group to the main app."""
    app.add_typer(outcomes_app, name="outcomes")
