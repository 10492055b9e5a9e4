"""The local stack as a benchmark sees it, and the worker's environment for a benchmark run.

Names (app id, topics, index prefix, namespace) are unique per run (``devstack.worker.unique_name``)
and removed at the end (``devstack.scratch.drop_app``). Only 127.0.0.1 addresses are used (those
``devstack env`` prints).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from devstack import wait
from devstack import worker as runner

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"


def stack_env(
    needs: Sequence[str] = ("kafka", "elasticsearch", "kube-apiserver"), timeout: float = 120.0
) -> dict[str, str]:
    """``devstack env`` as a dict; waits up to ``timeout`` s for the servers a benchmark needs (other
    sessions restart them in fault tests), then fails clearly."""
    from devstack import stack

    servers = [s for s in stack.select([]) if s.name in needs]

    def down() -> list[str]:
        return [name for name, state, _ in stack.status(servers) if not state.startswith("ready")]

    try:
        wait.until(f"{', '.join(needs)} ready", down, timeout=timeout, interval=2, ready=lambda names: not names)
    except wait.WaitTimeout as exc:
        raise SystemExit(f"bench: local stack not ready ({exc}): run `.venv/bin/python -m devstack up`") from None
    env = stack.env(stack.select([]))
    for key in ("DEVSTACK_KAFKA_BOOTSTRAP", "DEVSTACK_ELASTICSEARCH_URL", "KUBECONFIG"):
        if key not in env:
            raise SystemExit(f"bench: devstack env lacks {key}")
    return env


def worker_env(stack: dict[str, str], name: str, data_dir: Path, **overrides: str) -> dict[str, str]:
    """The worker's environment: defaults for everything that shapes throughput, unique names."""
    return runner.worker_env(
        stack,
        data_dir=data_dir / name,
        name=name,
        **{"K8SEV_CLUSTER": "bench", "K8SEV_LEASE_NAMESPACE": "default", **overrides},
    )


def start_worker(env: dict[str, str]) -> runner.Worker:
    """A worker logging to bench/out/logs/<app id>.log, started (not yet waited for)."""
    worker = runner.Worker(env, OUT / "logs" / f"{env['K8SEV_APP_ID']}.log")
    worker.start()
    return worker
