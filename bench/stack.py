"""The local stack as a benchmark sees it, and the worker's environment for a benchmark run.

Names (app id, topics, index prefix, namespace) are unique per run (``devstack.worker.unique_name``)
and removed at the end (``devstack.scratch.drop_app``). Only 127.0.0.1 addresses are used (those
``devstack env`` prints).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
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


#: Another checkout whose worker to run instead of this one's (the before of a before/after): the
#: benchmark, its names and its clocks stay this tree's, only the worker's code changes.
TREE_VAR = "BENCH_WORKER_TREE"


class TreeWorker(runner.Worker):
    """The runner's worker, started from another checkout (``BENCH_WORKER_TREE``) on this venv."""

    tree: Path = ROOT

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.started_at = time.monotonic()
        layout = installed_layout(self.tree)
        env = {**self.env, "PYTHONPATH": str(layout)}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "faust", "-A", "streams", "worker", "--loglevel", "info"],
                cwd=layout,  # python -m puts the working directory first on sys.path
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )


def installed_layout(tree: Path) -> Path:
    """``tree``'s packages as the wheel lays them out (``agents/`` and ``tables/`` inside ``streams/``),
    in the temporary directory (not in the repo, where the linters would read it): on ``PYTHONPATH``
    that tree's ``streams`` alone would take its agents and tables from the venv's editable install,
    that is from this checkout, not the other one."""
    target = Path(tempfile.gettempdir()) / "k8sev-bench-trees" / tree.name
    shutil.rmtree(target, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(tree / "streams", target / "streams", ignore=ignore)
    for sub in ("agents", "tables"):
        if (tree / sub).is_dir() and not (target / "streams" / sub).exists():
            shutil.copytree(tree / sub, target / "streams" / sub, ignore=ignore)
    return target


def worker_tree() -> Path | None:
    """The other checkout named by ``BENCH_WORKER_TREE`` (None: this one)."""
    value = os.environ.get(TREE_VAR)
    return Path(value).resolve() if value else None


def new_worker(env: dict[str, str], label: str = "") -> runner.Worker:
    """A worker logging to bench/out/logs/<app id><label>.log, not started."""
    log = OUT / "logs" / f"{env['K8SEV_APP_ID']}{label}.log"
    tree = worker_tree()
    if tree is None:
        return runner.Worker(env, log)
    worker = TreeWorker(env, log)
    worker.tree = tree
    return worker


def start_worker(env: dict[str, str], label: str = "") -> runner.Worker:
    """A worker logging to bench/out/logs/<app id><label>.log, started (not yet waited for)."""
    worker = new_worker(env, label)
    worker.start()
    return worker


def code_label() -> str:
    """Which worker code a report measured: this tree's commit or the other tree's."""
    tree = worker_tree() or ROOT
    try:
        head = subprocess.run(
            ["git", "-C", str(tree), "log", "-1", "--format=%h %s"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        head = "?"
    return f"{tree}: {head[:70]}"
