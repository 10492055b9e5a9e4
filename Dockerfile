# syntax=docker/dockerfile:1
# The worker image: `faust -A streams worker` as an unprivileged user on a slim Python 3.11.
#
#   docker build -t k8s-event-streams:0.1.0 .
#
# Stage 1 builds the project's wheel and wheels of every dependency and installs them from those
# files alone (no index) into a virtual environment; stage 2 copies only that environment, so the
# runtime has neither build tools, nor pip, nor a pip cache beyond what its base image brings.
#
# Any base with python3 (3.11+) on PATH works: the python: images, or a Debian rootfs with python3
# (tests/deploy/test_image.py builds one with mmdebstrap). BUILD_IMAGE must carry the same Python
# at the same path plus pip and the venv module (Debian: python3-pip, python3-venv); the python:
# images carry both, so one image serves both stages by default.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG BUILD_IMAGE=${PYTHON_IMAGE}

FROM ${BUILD_IMAGE} AS build
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md ./
# The dependencies' wheels first, in a layer of their own that a change to the sources alone reuses
# (no second download). Empty package folders (every one pyproject.toml lists) only let setuptools
# read the metadata; they are dropped.
RUN mkdir -p streams/explorer/static/vendor/uplot agents tables \
    streams/config streams/core streams/kube streams/ingest streams/dedup streams/counts streams/search \
    streams/retention streams/ops \
 && python3 -m pip wheel --wheel-dir /wheels . \
 && rm -rf streams agents tables build ./*.egg-info /wheels/k8s_event_streams-*
# agents/ and tables/ install as streams.agents and streams.tables (package-dir in pyproject.toml).
COPY agents ./agents
COPY tables ./tables
COPY streams ./streams
# A venv without pip: pip runs from the build stage's Python into it (pip's --python), so neither
# pip nor setuptools lands in what the runtime copies. Debian's pip also refuses to install into
# its system Python (PEP 668), which a venv avoids.
RUN python3 -m pip wheel --no-deps --wheel-dir /wheels . \
 && python3 -m venv --without-pip /opt/k8s-event-streams \
 && python3 -m pip --python /opt/k8s-event-streams/bin/python install --no-index --find-links=/wheels k8s-event-streams

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="k8s-event-streams" \
      org.opencontainers.image.description="Kubernetes events: API server -> Kafka -> Elasticsearch, with Faust" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/k8s-event-streams/bin:$PATH \
    K8SEV_DATA_DIR=/var/lib/k8s-event-streams
COPY --from=build /opt/k8s-event-streams /opt/k8s-event-streams
RUN groupadd --system --gid 10001 k8sev \
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
