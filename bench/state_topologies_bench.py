"""What each Redis topology costs an admit, and how long a master failover leaves no master.

Starts a private ``redis-server``, a 3-master/3-replica Redis Cluster and a Sentinel set (master,
replica, three sentinels) on loopback ports, then times sequential ``RedisStore.admit`` calls:
one server; Cluster with the key's own limits (one slot); Cluster with key + model limits and a
tenant budget (three slots, one script each, at once); Sentinel. Then kills the master holding
a bucket on the Cluster and on Sentinel and reports the seconds until a replica serves it.

    .venv/bin/python bench/state_topologies_bench.py --n 2000   # ~40 s
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the test suite's Redis launchers (tests/support)

from switchyard.gateway.tenancy.redis_store import RedisStore  # noqa: E402
from switchyard.gateway.tenancy.store import Bucket, Budget  # noqa: E402
from tests.support.redis import RedisServer  # noqa: E402
from tests.support.redis_topologies import RedisClusterSet, RedisSentinelSet  # noqa: E402

DAY = 86400.0
Request = tuple[list[Bucket], list[Budget]]
KEY_ONLY: Request = ([Bucket("key:k:rpm", 10**9, DAY, 1)], [])
SPANNING: Request = (
    [Bucket("key:k:rpm", 10**9, DAY, 1), Bucket("model:m:rpm", 10**9, DAY, 1)],
    [Budget("tenant:t:2026-12", 10**9, 0.0, DAY)],
)


async def admit_times(
    url: str, request: tuple[list[Bucket], list[Budget]], n: int
) -> dict[str, float]:
    store = RedisStore(url, key_prefix=f"bench{time.monotonic_ns()}", timeout_s=2.0)
    try:
        for _ in range(200):  # warm-up: connections, scripts, slot map
            await store.admit(*request)
        took = []
        for _ in range(n):
            started = time.perf_counter()
            await store.admit(*request)
            took.append((time.perf_counter() - started) * 1e6)
    finally:
        await store.close()
    cuts = statistics.quantiles(took, n=100)
    return {"p50_us": round(cuts[49], 1), "p99_us": round(cuts[98], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="admits timed per case")
    parser.add_argument("--out", type=Path, default=Path("bench/results/state_topologies.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sy-topologies-"))
    single = RedisServer(work / "single").start()
    cluster = RedisClusterSet(work / "cluster").start()
    sentinels = RedisSentinelSet(work / "sentinel").start()
    try:
        results = {
            "single server": asyncio.run(admit_times(single.url, KEY_ONLY, args.n)),
            "cluster, one slot": asyncio.run(admit_times(cluster.url, KEY_ONLY, args.n)),
            "cluster, three slots": asyncio.run(admit_times(cluster.url, SPANNING, args.n)),
            "sentinel": asyncio.run(admit_times(sentinels.url, KEY_ONLY, args.n)),
        }
        tat = RedisStore(cluster.url).tat_key("key:k:rpm")
        failover = {
            "cluster_s": round(cluster.kill_master_of(tat), 2),
            "sentinel_s": round(sentinels.kill_master(), 2),
        }
    finally:
        for stop in (single.stop, cluster.stop, sentinels.stop):
            stop()
    report = {"n": args.n, "admit": results, "failover_without_master": failover}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
