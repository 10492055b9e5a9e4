"""``event-collector``: the seed's collector flags, running the same Faust worker.

    event-collector --kubeconfig ~/.kube/config --topic k8s-event --broker 10.0.7.14:9092

Each flag stands for the matching ``K8SEV_*`` variable and wins over it (see docs/configuration.md);
the rest of the settings come from the environment as for ``faust -A streams worker``.
"""

from __future__ import annotations

import argparse
import os
import sys

from streams.config.settings import Settings, SettingsError
from streams.core import loop
from streams.pipeline import create_app

FLAGS = {
    "kubeconfig": ("K8SEV_KUBECONFIG", "kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)"),
    "topic": ("K8SEV_TOPIC", "raw Kafka topic (default: k8s-event)"),
    "broker": ("K8SEV_BROKER", "Kafka broker(s), host:port[,host:port] (default: localhost:9092)"),
    "es_url": ("K8SEV_ES_URL", "search engine URL(s) (default: http://localhost:9200)"),
    "cluster": ("K8SEV_CLUSTER", "cluster name on every document (default: default)"),
    "web_port": ("K8SEV_WEB_PORT", "web views, /healthz, /readyz and /metrics (default: 6066)"),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="event-collector",
        description="Keep Kubernetes events: watch them into Kafka and index them into Elasticsearch.",
    )
    for flag, (_, text) in FLAGS.items():
        parser.add_argument(f"--{flag.replace('_', '-')}", dest=flag, help=text)
    parser.add_argument("--loglevel", "-l", default="info", help="worker log level (default: info)")
    args = parser.parse_args(argv)
    overrides = {variable: value for flag, (variable, _) in FLAGS.items() if (value := getattr(args, flag)) is not None}
    # The flags win over the environment; nothing is written back to os.environ.
    try:
        settings = Settings.from_env({**os.environ, **overrides})
    except SettingsError as exc:
        print(f"event-collector: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    loop.choose()  # before Faust's worker makes its event loop
    app = create_app(settings)
    sys.argv = ["event-collector", "worker", "--loglevel", args.loglevel]
    app.main()


if __name__ == "__main__":
    main()
