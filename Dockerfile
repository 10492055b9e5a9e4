# syntax=docker/dockerfile:1
# The worker image: `faust -A streams worker` as an unprivileged user on a slim Python 3.11.
#
#   docker build -t k8s-event-streams:0.1.0 .
#
# Stage 1 builds the project's wheel and wheels of every dependency; stage 2 installs them from
# those files alone (no index), so the runtime has neither build tools nor a pip cache.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md ./
# agents/ and tables/ install as streams.agents and streams.tables (package-dir in pyproject.toml).
COPY agents ./agents
COPY tables ./tables
COPY streams ./streams
RUN pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="k8s-event-streams" \
      org.opencontainers.image.description="Kubernetes events: API server -> Kafka -> Elasticsearch, with Faust" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    K8SEV_DATA_DIR=/var/lib/k8s-event-streams
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels k8s-event-streams \
 && groupadd --system --gid 10001 k8sev \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/k8s-event-streams --no-create-home \
            --shell /usr/sbin/nologin k8sev \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/k8s-event-streams
# Numeric, so Kubernetes' runAsNonRoot can verify it without a runAsUser.
USER 10001:10001
WORKDIR /var/lib/k8s-event-streams
# The Faust web server: /healthz, /readyz, /metrics and the /counts views.
EXPOSE 6066
ENTRYPOINT ["faust", "-A", "streams", "worker"]
CMD ["--loglevel", "info"]
