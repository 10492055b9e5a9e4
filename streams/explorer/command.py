"""``kubectl eventlog``: ``kubectl events`` for the archive, long after the API server forgot them.

    kubectl eventlog -n demo --for deployment/web --since 7d
    kubectl eventlog -A --types Warning --reason BackOff,Failed -o json
    kubectl eventlog -n demo --watch

Installed as ``kubectl-eventlog`` (kubectl finds it on PATH as a plugin) and as ``eventlog``.
The archive is reached with the worker's own settings (``K8SEV_ES_URL``, ``K8SEV_SEARCH_ENGINE``,
``K8SEV_ES_USERNAME``/``_PASSWORD``/``_API_KEY``/``_CA_CERTS``..., ``K8SEV_INDEX_PREFIX``);
``--es-url`` overrides the URL. Exit status: 0 done, 1 the archive unreachable or failing, 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import sys
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from streams.config.settings import Settings, SettingsError
from streams.explorer import query

# The worker's settings that say how to reach the archive; the rest (Kafka, Kubernetes) is not ours.
CONNECTION_VARIABLES = (
    "K8SEV_SEARCH_ENGINE",
    "K8SEV_ES_URL",
    "K8SEV_ES_USERNAME",
    "K8SEV_ES_PASSWORD",
    "K8SEV_ES_PASSWORD_FILE",
    "K8SEV_ES_API_KEY",
    "K8SEV_ES_API_KEY_FILE",
    "K8SEV_ES_CA_CERTS",
    "K8SEV_ES_CLIENT_CERT",
    "K8SEV_ES_CLIENT_KEY",
    "K8SEV_INDEX_PREFIX",
)
KINDS = {
    "po": "Pod", "pod": "Pod", "pods": "Pod",
    "deploy": "Deployment", "deployment": "Deployment", "deployments": "Deployment",
    "rs": "ReplicaSet", "replicaset": "ReplicaSet", "replicasets": "ReplicaSet",
    "sts": "StatefulSet", "statefulset": "StatefulSet", "statefulsets": "StatefulSet",
    "ds": "DaemonSet", "daemonset": "DaemonSet", "daemonsets": "DaemonSet",
    "job": "Job", "jobs": "Job", "cj": "CronJob", "cronjob": "CronJob", "cronjobs": "CronJob",
    "no": "Node", "node": "Node", "nodes": "Node", "ns": "Namespace", "namespace": "Namespace",
    "svc": "Service", "service": "Service", "services": "Service",
    "ep": "Endpoints", "endpoints": "Endpoints", "ing": "Ingress", "ingress": "Ingress",
    "pvc": "PersistentVolumeClaim", "persistentvolumeclaim": "PersistentVolumeClaim",
    "pv": "PersistentVolume", "persistentvolume": "PersistentVolume",
    "hpa": "HorizontalPodAutoscaler", "horizontalpodautoscaler": "HorizontalPodAutoscaler",
    "cm": "ConfigMap", "configmap": "ConfigMap", "secret": "Secret", "sa": "ServiceAccount",
    "serviceaccount": "ServiceAccount", "lease": "Lease",
}  # fmt: skip
# The API group of each built-in kind above that has one (the rest are core, group "").
KIND_GROUPS = {
    **dict.fromkeys(("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"), "apps"),
    **dict.fromkeys(("Job", "CronJob"), "batch"),
    "Ingress": "networking.k8s.io",
    "HorizontalPodAutoscaler": "autoscaling",
    "Lease": "coordination.k8s.io",
}
# kubectl's own two (cli-runtime printers.EscapeTerminal), then every other control character in the
# same caret style, so an event's text can move no cursor, set no title and start no OSC sequence.
_ESCAPES = {0x1B: "^[", 0x0D: "\\r", 0x0A: "\\n", 0x7F: "^?"}
_TERMINAL_SAFE = {
    **{c: f"^{chr(c + 64)}" for c in range(0x20) if c != 0x09},
    **{c: f"\\x{c:02x}" for c in range(0x80, 0xA0)},
    **_ESCAPES,
}
WATCH_PERIOD = 2.0
# A document reaches the archive a little after its event happened: each poll looks this far back.
WATCH_LAG = timedelta(minutes=5)
SEEN_CAPACITY = 20_000


class UsageError(ValueError):
    pass


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kubectl eventlog",
        description="List archived Kubernetes events, like `kubectl events`, from the k8s-event-streams archive.",
        epilog="Times are ISO 8601 (2026-03-01T03:10:00Z; no zone: UTC) or epoch milliseconds.",
    )
    p.add_argument("-n", "--namespace", help="only this namespace (default: the kubeconfig context's, else default)")
    p.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    p.add_argument(
        "--for",
        dest="for_object",
        metavar="RESOURCE/NAME",
        help="only events about this object and what it owns, by the recorded owner chain: pod/web-1, "
        "deployment.apps/web, a CRD as Kind.group/name",
    )
    p.add_argument("-l", "--selector", help="label selector over the recorded labels (app=web,tier!=db)")
    p.add_argument("--types", help="comma-separated, any case: Normal, Warning")
    p.add_argument("--reason", help="comma-separated reasons")
    p.add_argument("--since", help="how far back: 30m, 24h, 7d (default: 1h)")
    p.add_argument("--from", dest="start", metavar="TIME", help="start of the range (instead of --since)")
    p.add_argument("--to", dest="end", metavar="TIME", help="end of the range (default: now)")
    p.add_argument("--cluster", help="only this cluster (the worker's K8SEV_CLUSTER)")
    p.add_argument("-q", "--query", default="", help="free text over message, reason and object name")
    p.add_argument("-o", "--output", default="table", choices=("table", "wide", "json", "yaml"))
    p.add_argument("-w", "--watch", action="store_true", help="after the list, print new events as they arrive")
    p.add_argument("--no-headers", action="store_true", help="table output without the header line")
    p.add_argument("--limit", type=int, default=500, help="at most this many documents, the newest (default: 500)")
    p.add_argument(
        "--all-versions",
        action="store_true",
        help="every archived version of each event (default: its newest, as kubectl events shows it)",
    )
    p.add_argument("--es-url", help="the archive's URL(s) (default: K8SEV_ES_URL)")
    return p


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    args = parser().parse_args(argv)
    try:
        params = search_params(args, env)
        settings = connection_settings(env, args.es_url)
    except UsageError as exc:
        print(f"error: {terminal_safe(str(exc))}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_run(args, params, settings, sys.stdout))
    except KeyboardInterrupt:
        return 0


def search_params(args: argparse.Namespace, env: Mapping[str, str]) -> dict[str, str]:
    """The flags as the explorer API's parameters (so both validate alike)."""
    if not 1 <= args.limit <= 10_000:
        raise UsageError("--limit: from 1 to 10000")
    if args.since and (args.start or args.end):
        raise UsageError("--since and --from/--to exclude each other")
    params: dict[str, str] = {"q": args.query}
    if args.since:
        params["range"] = args.since
    elif not args.start and not args.end:
        params["range"] = "1h"
    if args.start:
        params["from"] = args.start
    if args.end:
        params["to"] = args.end
    if not args.all_namespaces:
        params["namespace"] = args.namespace or current_namespace(env)
    if args.for_object:
        target = for_object(args.for_object)
        if "group" in target:
            # Owner chains record kinds, not groups: a kind of another group is that one object only.
            params.update(target)
        else:
            # The object and what it owns, by the recorded owner chain.
            params["owner"] = f"{target['kind']}/{target['name']}"
    if args.selector:
        params["labels"] = args.selector
    for flag, key in ((args.types, "type"), (args.reason, "reason"), (args.cluster, "cluster")):
        if flag:
            params[key] = flag
    try:
        query.parse_search({k: v for k, v in params.items() if v}, datetime.now(UTC))
    except query.QueryError as exc:
        raise UsageError(_flag_names(str(exc))) from None
    return {k: v for k, v in params.items() if v}


def for_object(text: str) -> dict[str, str]:
    """``--for`` as ``kubectl events`` takes it: ``pod/web-1``, ``deployment.apps/web``, ``widget.example.com/w1``.

    A built-in resource (any of kubectl's names for it, with or without its group) becomes its kind.
    Without the API server's discovery there is no way from a CRD's plural to its kind, so a CRD is
    named by its kind (``Widget.example.com/w1``; a lower-case first letter is raised) and its group
    narrows the events to that group's objects.
    """
    resource, sep, name = text.partition("/")
    if not sep or not resource or not name or "/" in name:
        raise UsageError(f"--for {text!r}: expected RESOURCE/NAME, such as pod/web-1 or deployment.apps/web")
    base, _, group = resource.partition(".")
    kind = KINDS.get(base.lower())
    if kind is not None and group in ("", KIND_GROUPS.get(kind, "")):
        return {"kind": kind, "name": name}
    params = {"kind": base[:1].upper() + base[1:], "name": name}
    if group:
        params["group"] = group
    return params


def terminal_safe(text: str) -> str:
    """``text`` with every C0 control but tab, DEL and every C1 control shown escaped, never sent."""
    return text.translate(_TERMINAL_SAFE)


def _flag_names(message: str) -> str:
    for param, flag in (("range:", "--since:"), ("from:", "--from:"), ("to:", "--to:"), ("type:", "--types:")):
        if message.startswith(param):
            return flag + message[len(param) :]
    return message


def current_namespace(env: Mapping[str, str]) -> str:
    """The namespace of the kubeconfig's current context, as kubectl would use; else ``default``."""
    import yaml

    files = [f for f in env.get("KUBECONFIG", "").split(os.pathsep) if f] or [str(Path.home() / ".kube" / "config")]
    for file in files:
        try:
            config = yaml.safe_load(Path(file).read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        current = config.get("current-context")
        for context in config.get("contexts") or []:
            if isinstance(context, dict) and context.get("name") == current:
                return str((context.get("context") or {}).get("namespace") or "default")
    return "default"


def connection_settings(env: Mapping[str, str], es_url: str | None) -> Settings:
    """The worker's Settings, from only the variables that locate the archive; ``es_url`` wins over K8SEV_ES_URL."""

    subset = {k: v for k, v in env.items() if k in CONNECTION_VARIABLES}
    if es_url:
        subset["K8SEV_ES_URL"] = es_url
    try:
        return Settings.from_env(subset)
    except SettingsError as exc:
        problems = exc.problems
        if es_url:
            # Name what the user typed, not the variable it stood in for.
            problems = [
                "--es-url" + p.removeprefix("K8SEV_ES_URL") if p.startswith("K8SEV_ES_URL=") else p for p in problems
            ]
        raise UsageError("; ".join(problems)) from None


async def _run(args: argparse.Namespace, params: dict[str, str], settings: Settings, out: TextIO) -> int:
    from streams.search.client import SearchClient, SearchFailed, SearchUnavailable

    client = SearchClient(settings)
    index = f"{settings.search.index_prefix}-*"
    where = ",".join(settings.search.urls)
    printer = Printer(args.output, out, wide=args.output == "wide", namespaces=args.all_namespaces)
    try:
        search, _ = query.parse_search(params, datetime.now(UTC))
        rows, docs, total = await _newest(client, index, search, args.limit)
        fetched = len(rows)
        if not args.all_versions:
            rows, docs = newest_versions(rows, docs)
        printer.header(args.no_headers)
        printer.rows(rows[::-1], docs[::-1], final=not args.watch)
        if total > fetched:
            print(f"showing the newest {fetched} of {total} documents; narrow it or raise --limit", file=sys.stderr)
        if args.watch:
            print("watching for new events (Ctrl-C stops)", file=sys.stderr, flush=True)
            await _watch(client, index, params, printer, {r["id"] for r in rows})
    except (SearchUnavailable, TimeoutError) as exc:
        print(terminal_safe(f"error: the event archive at {where} is unreachable: {exc}"), file=sys.stderr)
        return 1
    except SearchFailed as exc:
        print(terminal_safe(f"error: the event archive at {where} failed: {exc}"), file=sys.stderr)
        return 1
    finally:
        with contextlib.suppress(Exception):
            await client.close()
    return 0


def newest_versions(
    rows: list[dict[str, Any]], docs: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Newest first in, newest first out: one row per event (uid), its latest version."""
    seen: set[str] = set()
    kept_rows, kept_docs = [], []
    for item, doc in zip(rows, docs, strict=True):
        key = item["uid"] or item["id"]
        if key not in seen:
            seen.add(key)
            kept_rows.append(item)
            kept_docs.append(doc)
    return kept_rows, kept_docs


async def _newest(
    client: Any, index: str, search: query.Filter, limit: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    rows: list[dict[str, Any]] = []
    docs: list[dict[str, Any]] = []
    page = query.Page(size=min(limit, query.MAX_SIZE))
    total = 0
    while len(rows) < limit:
        response = await client.search(index, query.search_body(search, page))
        hits = response["hits"]["hits"]
        total = int(response["hits"]["total"]["value"])
        rows.extend(query.row(h) for h in hits)
        docs.extend(h.get("_source") or {} for h in hits)
        if len(hits) < page.size:
            break
        last = hits[-1]["sort"]
        page = query.Page(size=min(limit - len(rows), query.MAX_SIZE), after=(int(last[0]), str(last[1]), str(last[2])))
    return rows[:limit], docs[:limit], total


async def _watch(client: Any, index: str, params: dict[str, str], printer: Printer, seen_ids: set[str]) -> None:
    """Poll for documents not printed yet; a bounded memory of ids drops repeats."""
    seen: OrderedDict[str, None] = OrderedDict.fromkeys(seen_ids)
    window = {k: v for k, v in params.items() if k not in ("range", "from", "to")}
    while True:
        await asyncio.sleep(WATCH_PERIOD)
        now = datetime.now(UTC)
        window["from"] = str(int((now - WATCH_LAG).timestamp() * 1000))
        window["to"] = str(int((now + timedelta(minutes=1)).timestamp() * 1000))
        search, _ = query.parse_search(window, now)
        response = await client.search(index, query.search_body(search, query.Page(size=query.MAX_SIZE)))
        fresh = [h for h in response["hits"]["hits"] if h["_id"] not in seen]
        for hit in fresh:
            seen[hit["_id"]] = None
        while len(seen) > SEEN_CAPACITY:
            seen.popitem(last=False)
        printer.rows([query.row(h) for h in fresh[::-1]], [h.get("_source") or {} for h in fresh[::-1]], final=False)


class Printer:
    """``kubectl events`` output: a table (``wide`` adds columns), a JSON/YAML List, or a stream of objects."""

    def __init__(self, output: str, out: TextIO, *, wide: bool, namespaces: bool) -> None:
        self.output, self.out, self.wide, self.namespaces = output, out, wide, namespaces
        self.columns: list[tuple[str, Callable[[dict[str, Any], datetime], str]]] = []
        if namespaces:
            self.columns.append(("NAMESPACE", lambda r, _: r["namespace"]))
        self.columns += [
            ("LAST SEEN", last_seen),
            ("TYPE", lambda r, _: r["type"]),
            ("REASON", lambda r, _: r["reason"]),
            ("OBJECT", lambda r, _: f"{r['kind']}/{r['name']}"),
        ]
        if wide:
            self.columns += [("SUBOBJECT", lambda r, _: r["subobject"]), ("SOURCE", lambda r, _: source(r))]
        self.columns.append(("MESSAGE", lambda r, _: " ".join(r["message"].split())))
        if wide:
            self.columns += [
                ("FIRST SEEN", lambda r, now: age(r["first"], now)),
                ("COUNT", lambda r, _: str(r["count"])),
                ("NAME", lambda r, _: r["event"]),
            ]
        self._headers = False
        self._printed = False

    def header(self, skip: bool) -> None:
        self._headers = not skip and self.output in ("table", "wide")

    def rows(self, rows: list[dict[str, Any]], docs: list[dict[str, Any]], *, final: bool) -> None:
        if self.output in ("json", "yaml"):
            self._objects(docs, final)
            return
        now = datetime.now(UTC)
        # Every cell escaped: any field of an event is text that whoever could create the Event chose.
        cells = [[terminal_safe(get(r, now)) for _, get in self.columns] for r in rows]
        if not rows and final and not self._printed:
            print("No events found in the archive for this range.", file=sys.stderr)
            return
        if not rows:
            return
        if self._headers:
            cells.insert(0, [name for name, _ in self.columns])
            self._headers = False
        widths = [max(len(c[i]) for c in cells) for i in range(len(self.columns))]
        for line in cells:
            # Like kubectl: the last column (the message) is not padded.
            text = "   ".join(c.ljust(w) for c, w in zip(line[:-1], widths[:-1], strict=True)) + "   " + line[-1]
            self.out.write(text.rstrip() + "\n")
        self._printed = True
        self.out.flush()

    def _objects(self, docs: list[dict[str, Any]], final: bool) -> None:
        if final:
            listing = {"apiVersion": "v1", "kind": "List", "items": docs, "metadata": {"resourceVersion": ""}}
            self.out.write(json.dumps(listing, indent=4) + "\n" if self.output == "json" else _yaml(listing))
        else:
            # Watching: one object per event, as `kubectl get -w -o json` streams them.
            for doc in docs:
                self.out.write(json.dumps(doc) + "\n" if self.output == "json" else "---\n" + _yaml(doc))
        self.out.flush()


def _yaml(value: Any) -> str:
    import yaml

    return str(yaml.dump(value, Dumper=_yaml_dumper(), sort_keys=False, allow_unicode=True))


@functools.cache
def _yaml_dumper() -> type:
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
        # PyYAML writes NEL and the Unicode line and paragraph separators raw in plain and quoted
        # scalars, then reads each back as a line break; double quotes escape them (\\N, \\L, \\P).
        style = '"' if any(c in data for c in "\x85\u2028\u2029") else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    Dumper.add_representer(str, text)
    return Dumper


def last_seen(row: dict[str, Any], now: datetime) -> str:
    """``kubectl events``' LAST SEEN: ``5m (x12 over 2h)`` for a repeated event, else its age."""
    if row["count"] > 1:
        return f"{age(row['time'], now)} (x{row['count']} over {age(row['first'], now)})"
    return age(row["first"], now)


def source(row: dict[str, Any]) -> str:
    return f"{row['component']}, {row['host']}" if row["host"] and row["host"] != row["component"] else row["component"]


def age(stamp: Any, now: datetime) -> str:
    """kubectl's short human duration (``45s``, ``3m2s``, ``5h10m``, ``3d4h``) since ``stamp``."""
    if not stamp:
        return "<unknown>"
    try:
        then = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return human_duration(now - then)


def human_duration(delta: timedelta) -> str:
    """k8s.io/apimachinery ``duration.HumanDuration``."""
    seconds = int(delta.total_seconds())
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m" if seconds % 60 == 0 else f"{minutes}m{seconds % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = hours // 24
        return f"{days // 365}y" if days % 365 == 0 else f"{days // 365}y{days % 365}d"
    return f"{hours // 24 // 365}y"


if __name__ == "__main__":
    sys.exit(main())
