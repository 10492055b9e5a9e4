"""HTTPS with authentication in front of Elasticsearch and OpenSearch: nginx from Debian's packages.

The nodes are assembled without their security modules (not published on Maven Central), so TLS
and authentication are terminated by nginx, as a load balancer in front of a cluster would. A
request passes with the devstack user's basic-auth password, with the API key
(``Authorization: ApiKey ...``), or with a client certificate signed by the devstack CA; anything
else gets 401.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence

from devstack import paths, ports, process, tls
from devstack.errors import StackError
from devstack.server import Server

_CONF = """\
worker_processes 1;
daemon off;
user root;
pid {run}/nginx.pid;
error_log {log} warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    client_max_body_size 200m;
    # The map keys are whole Authorization headers, longer than the default bucket.
    map_hash_bucket_size 256;
    map $http_authorization $credential_ok {{
        "Basic {basic}" 1;
        "ApiKey {api_key}" 1;
        default 0;
    }}
    map "$credential_ok:$ssl_client_verify" $allowed {{
        "~^1:" 1;
        "~:SUCCESS$" 1;
        default 0;
    }}
{servers}
}}
"""

_SERVER = """\
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_client_certificate {ca};
        ssl_verify_client optional;
        location / {{
            if ($allowed = 0) {{
                add_header WWW-Authenticate 'Basic realm="devstack"' always;
                return 401 '{{"error":"authentication required"}}';
            }}
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 120s;
        }}
    }}
"""


class SearchHttps(Server):
    name = "search-https"
    after = ("elasticsearch", "opensearch")
    ready_timeout = 30.0

    def ports(self) -> Sequence[int]:
        return (ports.port("ELASTICSEARCH_TLS"), ports.port("OPENSEARCH_TLS"))

    def provision(self) -> None:
        process.require_tool(self.name, "nginx", "apt-get install nginx-light")
        tls.ensure(self.name)

    def start(self) -> None:
        nginx = process.require_tool(self.name, "nginx", "apt-get install nginx-light")
        run = paths.data_dir(self.name)
        run.mkdir(parents=True, exist_ok=True)
        creds = tls.credentials()
        basic = base64.b64encode(f"{creds['search_user']}:{creds['search_password']}".encode()).decode()
        upstreams = ((ports.port("ELASTICSEARCH_TLS"), ports.port("ELASTICSEARCH")),
                     (ports.port("OPENSEARCH_TLS"), ports.port("OPENSEARCH")))  # fmt: skip
        servers = "".join(
            _SERVER.format(
                port=listen, upstream=upstream, cert=tls.server_cert(), key=tls.server_key(), ca=tls.ca_cert()
            )
            for listen, upstream in upstreams
        )
        conf = run / "nginx.conf"
        conf.write_text(
            _CONF.format(
                run=run,
                log=paths.log_file(self.name),
                basic=basic,
                api_key=creds["search_api_key"],
                servers=servers,
            )
        )
        conf.chmod(0o600)
        process.spawn(self.name, [nginx, "-c", str(conf), "-p", str(run)])

    def probe(self) -> bool:
        # Unauthenticated requests must be refused, over TLS that our CA vouches for.
        import ssl
        import urllib.error
        import urllib.request

        context = ssl.create_default_context(cafile=str(tls.ca_cert()))
        url = f"https://127.0.0.1:{ports.port('ELASTICSEARCH_TLS')}/_cluster/health"
        try:
            urllib.request.urlopen(url, timeout=2, context=context)
        except urllib.error.HTTPError as exc:
            return exc.code == 401
        except OSError:
            return False
        raise StackError(self.name, "answers without authentication", paths.log_file(self.name))

    def env(self) -> Mapping[str, str]:
        es, opensearch = self.ports()
        return {
            "DEVSTACK_ELASTICSEARCH_HTTPS_URL": f"https://127.0.0.1:{es}",
            "DEVSTACK_OPENSEARCH_HTTPS_URL": f"https://127.0.0.1:{opensearch}",
            **tls.client_env(),
        }

    def describe(self) -> str:
        es, opensearch = self.ports()
        return f"https://127.0.0.1:{es} -> elasticsearch, https://127.0.0.1:{opensearch} -> opensearch"


SERVERS: list[Server] = [SearchHttps()]
