"""``python -m devstack.demo``: the main job on the local stack, with sample events flowing.

Starts the stack, runs ``faust -A streams worker`` against it, and drives a workload: a Deployment
on kwok's fake node scaled up and down (Scheduled, SuccessfulCreate, ScalingReplicaSet, Killing...),
and a Warning event that keeps happening again, so its count grows. Prints where to look, then a
progress line every few seconds until Ctrl-C (or ``--duration``). The stack keeps running afterwards;
``python -m devstack down`` stops it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import signal
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devstack import kube, paths, stack, wait
from devstack.errors import StackError
from devstack.worker import Worker, WorkerExited, worker_env

NAMESPACE = "demo"
DEPLOYMENT = "web"
WARNING_EVENT = "web-backoff"
SCALES = (3, 6, 2, 5, 1)

log = logging.getLogger("devstack.demo")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=0, help="stop after this many seconds (0: until Ctrl-C)")
    parser.add_argument("--web-port", type=int, default=6066, help="the worker's web port (default 6066)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    try:
        servers = stack.select([])
        stack.up(servers)
        env = stack.env(servers)
        kube.ensure_fake_node()
    except StackError as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 1

    worker_log = paths.state_dir() / "logs" / "demo-worker.log"
    worker = Worker(_worker_env(env, args.web_port), worker_log)
    print(f"starting: faust -A streams worker (log: {worker_log})", file=sys.stderr)
    worker.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        try:
            worker.wait_ready(timeout=120)
        except (WorkerExited, wait.WaitTimeout) as exc:
            print(f"worker did not become ready: {exc}", file=sys.stderr)
            return 1
        workload = threading.Thread(target=_workload, args=(env["KUBECONFIG"], stop), daemon=True)
        workload.start()
        _print_where_to_look(env, worker.url, worker_log)
        # Not a wait for a condition: the demo runs for as long as asked, reporting every 10 s.
        ends = time.monotonic() + args.duration if args.duration else None
        while not stop.is_set() and (ends is None or time.monotonic() < ends):
            if not worker.alive():
                print(f"worker exited with {worker.stop()}; see {worker_log}", file=sys.stderr)
                return 1
            stop.wait(10)
            _progress(env, worker.url)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        worker.stop(timeout=30)
        print("worker stopped; the stack is still running: `python -m devstack down` stops it", file=sys.stderr)
    return 0


def _worker_env(env: dict[str, str], web_port: int) -> dict[str, str]:
    # The default names (k8s-event...), kept across runs on purpose: the demo's data is there to look at.
    return worker_env(
        env,
        data_dir=paths.state_dir() / "demo-worker",
        K8SEV_CLUSTER="devstack",
        K8SEV_WEB_PORT=str(web_port),
    )


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback only
        return json.loads(resp.read())


def _print_where_to_look(env: dict[str, str], web: str, worker_log: Path) -> None:
    es = env["DEVSTACK_ELASTICSEARCH_URL"]
    print(
        f"""
Events are flowing. Look at them:
  explorer:       {web}/ui/?namespace={NAMESPACE}&range=1h   (click a pod for its history, BackOff in Top reasons)
  the archive:    PATH={Path(sys.executable).parent}:$PATH K8SEV_ES_URL={es} kubectl eventlog -n {NAMESPACE}
  Elasticsearch:  curl -s '{es}/k8s-event-*/_search?q=reason:BackOff&sort=@timestamp:desc&size=3&pretty'
                  curl -s '{es}/_cat/indices/k8s-event-*?v'
  count views:    curl -s '{web}/counts/reasons/?window=1m&namespace={NAMESPACE}'
                  curl -s '{web}/counts/kinds/?window=1h'
  health:         curl -s '{web}/readyz'
  metrics:        curl -s '{web}/metrics' | grep ^k8sev_
  raw topic:      the Event JSON, key = uid, topic k8s-event on {env["DEVSTACK_KAFKA_BOOTSTRAP"]}
  worker log:     {worker_log}
  kubectl:        export KUBECONFIG={env["KUBECONFIG"]}
Ctrl-C stops the worker and the workload.
""",
        file=sys.stderr,
        flush=True,
    )


def _progress(env: dict[str, str], web: str) -> None:
    try:
        docs = _get_json(f"{env['DEVSTACK_ELASTICSEARCH_URL']}/k8s-event-*/_count")["count"]
        counts = _get_json(f"{web}/counts/reasons/?window=1h&namespace={NAMESPACE}")
    except OSError as exc:
        print(f"progress unavailable: {exc}", file=sys.stderr)
        return
    top = ", ".join(f"{r['reason']}={r['count']}" for r in counts["reasons"][:4])
    total = counts["total"]
    print(f"{datetime.now(UTC):%H:%M:%S} documents={docs} occurrences(1h, {NAMESPACE})={total} {top}", file=sys.stderr)


def _workload(kubeconfig: str, stop: threading.Event) -> None:
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    api = config.new_client_from_config(config_file=kubeconfig)
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    try:
        core.create_namespace({"metadata": {"name": NAMESPACE}})
    except ApiException as exc:
        if exc.status != 409:
            raise
    labels = {"app": DEPLOYMENT}
    deployment = {
        "metadata": {"name": DEPLOYMENT},
        "spec": {
            "replicas": SCALES[0],
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "nginx", "image": "nginx"}], "nodeSelector": {"type": "kwok"}},
            },
        },
    }
    try:
        apps.create_namespaced_deployment(NAMESPACE, deployment)
    except ApiException as exc:
        if exc.status != 409:
            raise
    scales = itertools.cycle(SCALES[1:] + SCALES[:1])
    count = 0
    for tick in itertools.count():
        if stop.is_set():
            return
        try:
            count = _repeat_warning(core, count)
            if tick % 6 == 5:
                replicas = next(scales)
                apps.patch_namespaced_deployment_scale(DEPLOYMENT, NAMESPACE, {"spec": {"replicas": replicas}})
                log.info("scaled %s to %d", DEPLOYMENT, replicas)
        except ApiException as exc:
            log.warning("workload step failed: %s", exc.reason)
        stop.wait(5)


def _repeat_warning(core: Any, count: int) -> int:
    """A Warning that keeps happening: created once, then its count and lastTimestamp grow."""
    from kubernetes.client.exceptions import ApiException

    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        if not count:
            # An earlier demo run may have left it: carry on counting from there.
            count = core.read_namespaced_event(WARNING_EVENT, NAMESPACE).count or 1
        core.patch_namespaced_event(WARNING_EVENT, NAMESPACE, {"count": count + 1, "lastTimestamp": stamp})
        return count + 1
    except ApiException as exc:
        if exc.status != 404:
            raise
    # Not there (first run, or expired from etcd): a new event.
    body = {
        "metadata": {"name": WARNING_EVENT, "namespace": NAMESPACE},
        "involvedObject": {"kind": "Deployment", "namespace": NAMESPACE, "name": DEPLOYMENT, "apiVersion": "apps/v1"},
        "reason": "BackOff",
        "message": "Back-off restarting failed container nginx (demo)",
        "type": "Warning",
        "count": 1,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "source": {"component": "devstack-demo"},
    }
    core.create_namespaced_event(NAMESPACE, body)
    return 1


if __name__ == "__main__":
    sys.exit(main())
