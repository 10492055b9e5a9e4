"""The project's Docker-less local stack: real Kafka, Elasticsearch, OpenSearch and Kubernetes servers.

Run ``python -m devstack --help``. Everything downloaded or built lives under the user cache
directory (see :mod:`devstack.paths`), so a fresh clone reuses what an earlier one fetched.
"""
