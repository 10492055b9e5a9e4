"""A TCP load balancer in front of both API servers: nginx's stream module, from Debian's packages.

Production control planes run several API servers behind a load balancer, and a client's kubeconfig
names one address: the load balancer's. A reconnect (a watch, a Lease renewal) may land on the other
server, with a watch cache of its own. That is what this reproduces; a kubeconfig per server would
not, since a client holds one server address and could not move to the other by itself.

TLS passes through untouched (each server presents its own certificate), so the kubeconfig behind it
trusts both (:func:`devstack.kube_auth.both_ca`). Connections go round-robin; one that cannot be
opened (the server is stopped) is retried on the other at once, and a stopped server's open
connections close, as when a server of a real control plane restarts. Debian's nginx-light builds the
stream module as a dynamic module, shipped as ``libnginx-mod-stream``; it is loaded by path here since
this configuration does not read /etc/nginx.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from devstack import paths, ports, process
from devstack.errors import StackError
from devstack.kube_auth import (
    apiserver_url,
    both_ca,
    https_ok,
    server_kubeconfig,
    write_both_ca,
    write_server_kubeconfig,
)
from devstack.server import Server

NGINX_HINT = "apt-get install nginx-light"
STREAM_HINT = "apt-get install libnginx-mod-stream (nginx's stream module, for the API servers' load balancer)"

_CONF = """\
worker_processes 1;
daemon off;
user root;
pid {run}/nginx.pid;
error_log {log} warn;
{load}
events {{ worker_connections 512; }}
stream {{
    upstream kube_apiservers {{
        # A failed connect marks the server down for 2 s; the next connection tries the other.
        server 127.0.0.1:{first} max_fails=1 fail_timeout=2s;
        server 127.0.0.1:{second} max_fails=1 fail_timeout=2s;
    }}
    server {{
        listen 127.0.0.1:{port};
        proxy_pass kube_apiservers;
        proxy_connect_timeout 1s;
        # A watch is quiet between events and bookmarks: the client's timeouts decide, not ours.
        proxy_timeout 1h;
    }}
}}
"""


def stream_module(nginx: str) -> Path | None:
    """The stream module's file, or None when this nginx has the module built in."""
    built = subprocess.run([nginx, "-V"], capture_output=True, text=True, timeout=10, check=False).stderr
    if re.search(r"--with-stream(\s|$)", built):
        return None
    found = re.search(r"--modules-path=(\S+)", built)
    return Path(found.group(1) if found else "/usr/lib/nginx/modules") / "ngx_stream_module.so"


class KubeApiserverLb(Server):
    name = "kube-apiserver-lb"
    after = ("kube-apiserver", "kube-apiserver-2")
    ready_timeout = 30.0
    default = False

    def ports(self) -> Sequence[int]:
        return [ports.port("KUBE_APISERVER_LB")]

    def provision(self) -> None:
        self._nginx()

    def _nginx(self) -> tuple[str, Path | None]:
        nginx = process.require_tool(self.name, "nginx", NGINX_HINT)
        module = stream_module(nginx)
        if module is not None and not module.is_file():
            raise StackError(self.name, f"nginx's stream module {module} is missing: {STREAM_HINT}")
        return nginx, module

    def start(self) -> None:
        nginx, module = self._nginx()
        write_both_ca()
        write_server_kubeconfig(self.name, both_ca())
        run = paths.data_dir(self.name)
        run.mkdir(parents=True, exist_ok=True)
        conf = run / "nginx.conf"
        conf.write_text(
            _CONF.format(
                run=run,
                log=paths.log_file(self.name),
                load=f"load_module {module};" if module else "",
                first=ports.port("KUBE_APISERVER"),
                second=ports.port("KUBE_APISERVER_2"),
                port=ports.port("KUBE_APISERVER_LB"),
            )
        )
        process.spawn(self.name, [nginx, "-c", str(conf), "-p", str(run)])

    def probe(self) -> bool:
        return https_ok(f"{apiserver_url(self.name)}/readyz", both_ca())

    def env(self) -> Mapping[str, str]:
        return {
            "DEVSTACK_KUBE_APISERVER_LB": apiserver_url(self.name),
            "DEVSTACK_KUBECONFIG_LB": str(server_kubeconfig(self.name)),
        }

    def describe(self) -> str:
        return f"{apiserver_url(self.name)} -> both API servers (DEVSTACK_KUBECONFIG_LB={server_kubeconfig(self.name)})"


SERVERS: list[Server] = [KubeApiserverLb()]
