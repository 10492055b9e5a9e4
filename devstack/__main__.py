"""``python -m devstack up|down|status|env|logs|provision|restart|kill [server ...]``."""

from __future__ import annotations

import argparse
import logging
import shlex
import shutil
import sys

from devstack import paths, process, stack, tools
from devstack.errors import StackError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack",
        description="Run the project's local stack: Kafka, Elasticsearch, OpenSearch and Kubernetes "
        "(etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok) as local processes.",
        epilog="Servers: kafka elasticsearch opensearch search-https etcd kube-apiserver kube-controller-manager "
        "kube-scheduler kwok, and kube-apiserver-2 kube-apiserver-lb (a second API server on the same etcd and "
        "a TCP load balancer in front of both: started only when named); `kube` names the Kubernetes five, "
        "`kube-ha` the last two. No server named: `up` and `restart` act on the default servers, the other "
        "commands on all of them. `provision` also builds the tools the tests run (Helm, kustomize); "
        "`provision tools` only them.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in [
        ("provision", "download and build into the cache, start nothing"),
        ("up", "provision, start and wait until ready (reuses servers already running)"),
        ("down", "stop (SIGTERM, then SIGKILL) and leave no process behind"),
        ("restart", "stop, then start again, keeping data"),
        ("kill", "SIGKILL at once, keeping data (for fault injection)"),
        ("status", "show each server's state and address"),
        ("env", 'print shell exports for clients: eval "$(python -m devstack env)"'),
        ("logs", "print each server's log path"),
    ]:
        cmd = sub.add_parser(name, help=text, description=text)
        cmd.add_argument("servers", nargs="*", metavar="server")
        if name == "down":
            cmd.add_argument("--purge", action="store_true", help="also delete data and logs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)

    try:
        return _run(args)
    except StackError as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    if args.command == "provision":
        names = [n for n in args.servers if n != TOOLS]
        if names or not args.servers:
            stack.provision(stack.select(names, every=True))
        if TOOLS in args.servers or not args.servers:
            tools.provision()
        return 0
    # `down` and `kill` act on exactly what was named; the others pull in dependencies.
    exact = args.command in ("down", "kill", "restart")
    every = args.command not in ("up", "restart")
    servers = stack.select(args.servers, every=every) if not exact or not args.servers else _exact(args.servers)
    if args.command == "up":
        stack.up(servers)
        print(f'stack ready; clients: eval "$({shlex.join([sys.executable, "-m", "devstack", "env"])})"')
    elif args.command == "down":
        stack.down(servers)
        if args.purge:
            shutil.rmtree(paths.state_dir(), ignore_errors=True)
    elif args.command == "restart":
        stack.down(servers)
        stack.up(servers)
    elif args.command == "kill":
        for server in servers:
            if process.kill(server.name):
                logging.getLogger("devstack").info("killed %s", server.name)
    elif args.command == "status":
        rows = stack.status(servers)
        width = max(len(r[0]) for r in rows)
        for name, state, where in rows:
            print(f"{name:<{width}}  {state:<22}  {where}")
        # Unless named, a server not started by default may be stopped; one that runs must be ready.
        fine = [
            r[1].startswith("ready") or (not s.default and not args.servers and r[1] == "stopped")
            for s, r in zip(servers, rows, strict=True)
        ]
        return 0 if all(fine) else 3
    elif args.command == "env":
        for key, value in stack.env(servers).items():
            print(f"export {key}={shlex.quote(value)}")
    elif args.command == "logs":
        for server in servers:
            print(f"{server.name}: {paths.log_file(server.name)}")
    return 0


TOOLS = "tools"


def _exact(names: list[str]) -> list[stack.Server]:
    chosen = {s.name for s in stack.select(names)} & (set(names) | _expand_groups(names))
    return [s for s in stack.all_servers() if s.name in chosen]


def _expand_groups(names: list[str]) -> set[str]:
    return {member for name in names for member in stack.GROUPS.get(name, ())}


if __name__ == "__main__":
    sys.exit(main())
