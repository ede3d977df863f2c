"""The redis-py floor for a Redis Cluster is checked at startup, in one clear line: older
versions' asyncio RedisCluster lacks what the store's cluster path calls."""

from __future__ import annotations

import pytest
import redis

from roomhub.server.node import check_redis_url

CLUSTER = "redis+cluster://127.0.0.1:7000,127.0.0.1:7001"


@pytest.mark.parametrize("version", ["5.0.1", "7.4.1"])
def test_a_cluster_url_with_an_old_redis_py_is_refused(
    monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    monkeypatch.setattr(redis, "__version__", version)
    with pytest.raises(ValueError, match=rf"redis-py >= 8\.0 \(installed: {version}\)"):
        check_redis_url(CLUSTER)


@pytest.mark.parametrize("version", ["5.0.1", "8.0.0", "8.1.0"])
def test_a_single_redis_takes_any_supported_redis_py(
    monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    monkeypatch.setattr(redis, "__version__", version)
    check_redis_url("redis://127.0.0.1:6379/0")
    if version.startswith("8."):
        check_redis_url(CLUSTER)
