"""``kubectl eventlog``: ``kubectl events`` for the archive, long after the API server forgot them.

    kubectl eventlog -n demo --for deployment/web --since 7d
    kubectl eventlog -A --types Warning --reason BackOff,Failed -o json
    kubectl eventlog -n demo --watch

Installed as ``kubectl-eventlog`` (kubectl finds it on PATH as a plugin) and as ``eventlog``.
By default it asks the explorer's JSON API of the workers, through the API server's service proxy,
as the kubeconfig's user (``--kubeconfig``, ``--context``, ``--token``): RBAC decides what it shows
(:mod:`streams.explorer.proxy`). With ``--es-url`` or ``K8SEV_ES_URL`` it reads the archive directly
instead, with the worker's own settings (``K8SEV_SEARCH_ENGINE``, ``K8SEV_ES_USERNAME``/``_PASSWORD``/
``_API_KEY``/``_CA_CERTS``..., ``K8SEV_INDEX_PREFIX``): for admins, who hold the engine's credentials.
Both paths print alike. Exit status: 0 done, 1 the archive unreachable, failing or refusing, 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import sys
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TextIO

from streams.config.settings import Settings, SettingsError
from streams.explorer import proxy, query

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


class ArchiveError(Exception):
    """The archive, or the API server in front of it, did not answer: the one line to print."""


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
    kube = p.add_argument_group("through the API server (the default)")
    kube.add_argument("--kubeconfig", help="the kubeconfig file(s) (default: KUBECONFIG, else ~/.kube/config)")
    kube.add_argument("--context", help="the kubeconfig context (default: its current context)")
    kube.add_argument(
        "--token",
        help="bearer token for the API server and the explorer behind it, instead of the kubeconfig user's "
        "(needed when that user signs in with a client certificate: kubectl create token ...)",
    )
    kube.add_argument(
        "--service",
        help=f"the workers' Service (default: {proxy.DEFAULT_SERVICE}; "
        f"or {proxy.SERVICE_VARIABLE}=namespace/name:port)",
    )
    kube.add_argument("--service-namespace", help=f"its namespace (default: {proxy.DEFAULT_NAMESPACE})")
    kube.add_argument("--service-port", help=f"its web port's name or number (default: {proxy.DEFAULT_PORT})")
    kube.add_argument(
        "--request-timeout", type=float, default=60.0, help="seconds to wait for one answer (default: 60)"
    )
    direct = p.add_argument_group("directly from the search engine (admins)")
    direct.add_argument(
        "--es-url", help="the archive's URL(s); reads the engine, not the API server (default: K8SEV_ES_URL)"
    )
    return p


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    args = parser().parse_args(argv)
    try:
        params = search_params(args, env)
        if args.es_url or env.get("K8SEV_ES_URL"):
            archive: Archive = EngineArchive(connection_settings(env, args.es_url))
        else:
            archive = proxy_archive(args, env)
    except UsageError as exc:
        print(f"error: {terminal_safe(str(exc))}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_run(args, params, archive, sys.stdout))
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
        params["namespace"] = args.namespace or current_namespace(env, args.kubeconfig, args.context)
    if args.for_object:
        params.update(for_params(for_object(args.for_object)))
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


def for_object(text: str, discovered: str | None = None) -> dict[str, str]:
    """``--for`` as ``kubectl events`` takes it: ``pod/web-1``, ``deployment.apps/web``, ``widgets.example.com/w1``.

    A built-in resource (any of kubectl's names for it, with or without its group) becomes its kind.
    Any other is ``discovered``'s kind when the API server's discovery named it (the command asks it
    on the API server path: :func:`to_discover`); else it is taken as a kind (``Widget.example.com/w1``;
    a lower-case first letter is raised), since the archive outlives CRDs and their discovery. Its
    group narrows the events to that group's objects.
    """
    resource, sep, name = text.partition("/")
    if not sep or not resource or not name or "/" in name:
        raise UsageError(f"--for {text!r}: expected RESOURCE/NAME, such as pod/web-1 or deployment.apps/web")
    base, _, group = resource.partition(".")
    kind = KINDS.get(base.lower())
    if kind is not None and group in ("", KIND_GROUPS.get(kind, "")):
        return {"kind": kind, "name": name}
    params = {"kind": discovered or base[:1].upper() + base[1:], "name": name}
    if group:
        params["group"] = group
    return params


def to_discover(text: str) -> tuple[str, str] | None:
    """``--for``'s (resource, group) when no built-in name matched it: what discovery may turn into a kind."""
    base, _, group = text.partition("/")[0].partition(".")
    kind = KINDS.get(base.lower())
    if kind is not None and group in ("", KIND_GROUPS.get(kind, "")):
        return None
    return base, group


def for_params(target: Mapping[str, str]) -> dict[str, str]:
    if "group" in target:
        # Owner chains record kinds, not groups: a kind of another group is that one object only.
        return dict(target)
    # The object and what it owns, by the recorded owner chain.
    return {"owner": f"{target['kind']}/{target['name']}"}


def terminal_safe(text: str) -> str:
    """``text`` with every C0 control but tab, DEL and every C1 control shown escaped, never sent."""
    return text.translate(_TERMINAL_SAFE)


def _flag_names(message: str) -> str:
    for param, flag in (("range:", "--since:"), ("from:", "--from:"), ("to:", "--to:"), ("type:", "--types:")):
        if message.startswith(param):
            return flag + message[len(param) :]
    return message


def kubeconfig_files(env: Mapping[str, str], flag: str | None = None) -> list[str]:
    """``--kubeconfig``, else KUBECONFIG's files, else ~/.kube/config: kubectl's order."""
    listed = flag or env.get("KUBECONFIG", "")
    return [f for f in listed.split(os.pathsep) if f] or [str(Path.home() / ".kube" / "config")]


def current_namespace(env: Mapping[str, str], kubeconfig: str | None = None, context: str | None = None) -> str:
    """The namespace of the kubeconfig's context (``context``, else its current one), as kubectl would use;
    else ``default``. The first file that names the current context, or has the context, decides (kubectl's merge)."""
    import yaml

    configs = []
    for file in kubeconfig_files(env, kubeconfig):
        try:
            config = yaml.safe_load(Path(file).read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(config, dict):
            configs.append(config)
    wanted = context or next((c["current-context"] for c in configs if c.get("current-context")), None)
    for config in configs:
        for entry in config.get("contexts") or []:
            if isinstance(entry, dict) and entry.get("name") == wanted:
                return str((entry.get("context") or {}).get("namespace") or "default")
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


class Archive(Protocol):
    """Where the command reads: an answer shaped as the explorer's ``/ui/api/search`` with ``source=1``."""

    where: str

    async def search(self, params: Mapping[str, str]) -> dict[str, Any]:
        """One page; raises :class:`ArchiveError` with the line to print."""

    async def close(self) -> None: ...


class EngineArchive:
    """The search engine itself, with the worker's settings (``--es-url``): what the explorer would answer."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client: Any = None  # made in the event loop that uses it
        self.index = f"{settings.search.index_prefix}-*"
        self.where = ",".join(settings.search.urls)

    async def search(self, params: Mapping[str, str]) -> dict[str, Any]:
        from streams.search.client import SearchClient, SearchFailed, SearchUnavailable

        if self.client is None:
            self.client = SearchClient(self.settings)
        search, page = query.parse_search(params, datetime.now(UTC))
        try:
            response = await self.client.search(self.index, query.search_body(search, page))
        except (SearchUnavailable, TimeoutError) as exc:
            raise ArchiveError(f"the event archive at {self.where} is unreachable: {exc}") from None
        except SearchFailed as exc:
            raise ArchiveError(f"the event archive at {self.where} failed: {exc}") from None
        return query.search_answer(response, page, sources=True)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()


class ProxyArchive:
    """The explorer's JSON API behind the API server's service proxy, as the kubeconfig's user."""

    def __init__(
        self,
        server: str,
        where: proxy.Target,
        token: Callable[[], str],
        ssl_context: Any,
        server_hostname: str | None,
        timeout: float,
    ) -> None:
        self.server, self.target, self.token = server, where, token
        self.ssl_context, self.server_hostname, self.timeout = ssl_context, server_hostname, timeout
        self.where = f"{server} (Service {where})"
        self._session: Any = None

    async def _get(self, url: str, *, worker: bool = False) -> tuple[int, bytes]:
        """GET ``url`` as the kubeconfig's user; ``worker``: the token again for the worker behind the proxy."""
        import aiohttp

        if self._session is None:
            # trust_env: HTTPS_PROXY/NO_PROXY, as kubectl honours them.
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout), trust_env=True)
        extra = {"server_hostname": self.server_hostname} if self.server_hostname else {}
        sent = proxy.headers(self.token(), worker=worker)
        try:
            async with self._session.get(
                url, headers=sent, ssl=self.ssl_context, allow_redirects=False, **extra
            ) as response:
                return response.status, await response.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise ArchiveError(f"the API server at {self.server} is unreachable: {exc or type(exc).__name__}") from None

    async def discover(self, resource: str, group: str) -> str | None:
        """The kind of ``resource`` (plural, singular, short name or kind) in ``group``, by the API
        server's discovery, as kubectl's RESTMapper finds it; None when it does not say (a CRD since
        removed: its events are still in the archive)."""
        server = self.server.rstrip("/")
        if group:
            status, body = await self._get(f"{server}/apis/{urllib.parse.quote(group)}")
            versions = [f"/apis/{urllib.parse.quote(v)}" for v in proxy.group_versions(body)] if status == 200 else []
        else:
            versions = ["/api/v1"]
        for path in versions:
            status, body = await self._get(server + path)
            kind = proxy.kind_in(resource, body) if status == 200 else None
            if kind:
                return kind
        return None

    async def search(self, params: Mapping[str, str]) -> dict[str, Any]:
        url = proxy.api_url(self.server, self.target, "search", {**params, "source": "1"})
        status, body = await self._get(url, worker=True)
        if status != 200:
            raise ArchiveError(proxy.refusal(status, body, self.target, self.server))
        try:
            answer: dict[str, Any] = json.loads(body)
            answer["rows"] = list(answer["rows"])
        except (ValueError, KeyError, TypeError):
            raise ArchiveError(f"the explorer behind {self.target} answered no search result") from None
        return answer

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def proxy_archive(args: argparse.Namespace, env: Mapping[str, str]) -> ProxyArchive:
    """The kubeconfig's cluster and credentials, as kubectl reads them (the Kubernetes client's loader:
    certificate data, exec plugins, OIDC), and the worker's Service from the flags."""
    import ssl

    from streams.kube.client import KubeconfigError, read_kubeconfig

    try:
        where = proxy.target(env, namespace=args.service_namespace, name=args.service, port=args.service_port)
    except proxy.TargetError as exc:
        raise UsageError(str(exc)) from None
    files = os.pathsep.join(kubeconfig_files(env, args.kubeconfig))
    try:
        kubeconfig = read_kubeconfig(files, args.context, args.token)
    except KubeconfigError as exc:
        raise UsageError(
            f"kubeconfig {files}: {exc}; name one with --kubeconfig (or KUBECONFIG), or read the archive"
            " directly with --es-url"
        ) from None
    try:
        proxy.token_for_worker(
            args.token,
            kubeconfig.authorization(),
            user=kubeconfig.user,
            context=kubeconfig.context,
            client_cert=bool(kubeconfig.cert_file),
        )
    except proxy.NoToken as exc:
        raise UsageError(str(exc)) from None

    def token() -> str:
        return proxy.bearer(kubeconfig.authorization())

    try:
        context_ssl = ssl.create_default_context(cafile=kubeconfig.ca_file)
        if kubeconfig.cert_file:
            context_ssl.load_cert_chain(kubeconfig.cert_file, kubeconfig.key_file)
    except (ssl.SSLError, OSError) as exc:
        raise UsageError(f"kubeconfig {files}: its CA or client certificate does not load: {exc}") from None
    if not kubeconfig.verify_ssl:
        context_ssl.check_hostname = False
        context_ssl.verify_mode = ssl.CERT_NONE
    return ProxyArchive(kubeconfig.host, where, token, context_ssl, kubeconfig.tls_server_name, args.request_timeout)


async def _run(args: argparse.Namespace, params: dict[str, str], archive: Archive, out: TextIO) -> int:
    printer = Printer(args.output, out, wide=args.output == "wide", namespaces=args.all_namespaces)
    try:
        wanted = to_discover(args.for_object) if args.for_object else None
        if wanted is not None and isinstance(archive, ProxyArchive):
            kind = await archive.discover(*wanted)
            if kind:
                for key in ("kind", "name", "group", "owner"):
                    params.pop(key, None)
                params.update(for_params(for_object(args.for_object, kind)))
        rows, total, notice = await _newest(archive, params, args.limit)
        if notice:
            # The explorer's word on why the answer is empty or cut (no rights anywhere, say).
            print(terminal_safe(f"note: {notice}"), file=sys.stderr)
        fetched = len(rows)
        docs = [r.pop("source", None) or {} for r in rows]
        if not args.all_versions:
            rows, docs = newest_versions(rows, docs)
        printer.header(args.no_headers)
        printer.rows(rows[::-1], docs[::-1], final=not args.watch)
        if total > fetched:
            print(f"showing the newest {fetched} of {total} documents; narrow it or raise --limit", file=sys.stderr)
        if args.watch:
            print("watching for new events (Ctrl-C stops)", file=sys.stderr, flush=True)
            await _watch(archive, params, printer, {r["id"] for r in rows})
    except ArchiveError as exc:
        print(terminal_safe(f"error: {exc}"), file=sys.stderr)
        return 1
    finally:
        with contextlib.suppress(Exception):
            await archive.close()
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


async def _newest(archive: Archive, params: Mapping[str, str], limit: int) -> tuple[list[dict[str, Any]], int, str]:
    """The newest ``limit`` rows (each with its ``source``), newest first, the total matching, the notice."""
    rows: list[dict[str, Any]] = []
    total = 0
    notice = ""
    after: str | None = None
    while len(rows) < limit:
        size = min(limit - len(rows), query.MAX_SIZE)
        page = {**params, "size": str(size), **({"after": after} if after else {})}
        answer = await archive.search(page)
        rows.extend(answer["rows"])
        total = int(answer["total"])
        notice = str(answer.get("notice") or "")
        after = answer.get("next")
        if not after or len(answer["rows"]) < size:
            break
    return rows[:limit], total, notice


async def _watch(archive: Archive, params: dict[str, str], printer: Printer, seen_ids: set[str]) -> None:
    """Poll for documents not printed yet; a bounded memory of ids drops repeats."""
    seen: OrderedDict[str, None] = OrderedDict.fromkeys(seen_ids)
    window = {k: v for k, v in params.items() if k not in ("range", "from", "to")}
    while True:
        await asyncio.sleep(WATCH_PERIOD)
        now = datetime.now(UTC)
        window["from"] = str(int((now - WATCH_LAG).timestamp() * 1000))
        window["to"] = str(int((now + timedelta(minutes=1)).timestamp() * 1000))
        answer = await archive.search({**window, "size": str(query.MAX_SIZE)})
        fresh = [r for r in answer["rows"] if r["id"] not in seen]
        for item in fresh:
            seen[item["id"]] = None
        while len(seen) > SEEN_CAPACITY:
            seen.popitem(last=False)
        docs = [r.pop("source", None) or {} for r in fresh]
        printer.rows(fresh[::-1], docs[::-1], final=False)


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
