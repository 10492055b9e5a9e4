#!/usr/bin/env bash
# One-shot setup of the compose stack (the `setup` service), safe to run again:
#   1. the index template of the daily indices (the worker installs the same one at start; Logstash
#      never does, so it must exist before Logstash writes the first document),
#   2. the Kibana saved objects: data view, saved searches, dashboard (overwriting older copies),
#   3. that data view as Kibana's default.
set -euo pipefail

es="${ELASTICSEARCH_URL:-http://elasticsearch:9200}"
kibana="${KIBANA_URL:-http://kibana:5601}"
here="$(dirname "$0")"
template="${here}/k8s-event-template.json"
objects="${here}/k8s-event.ndjson"

wait_for() {  # what, command...
  local what="$1" tries=0
  shift
  until "$@" >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -ge 120 ]; then
      echo "setup: gave up waiting for ${what}" >&2
      exit 1
    fi
    sleep 5
  done
}

kibana_available() {
  curl -fsS "${kibana}/api/status" | grep -q '"level":"available"'
}

wait_for "Elasticsearch" curl -fsS "${es}/_cluster/health?wait_for_status=yellow&timeout=5s"
curl -fsS -X PUT "${es}/_index_template/k8s-event-template" \
  -H 'Content-Type: application/json' --data-binary "@${template}"
echo
echo "setup: index template k8s-event-template loaded"

wait_for "Kibana" kibana_available
result="$(curl -fsS -X POST "${kibana}/api/saved_objects/_import?overwrite=true" \
  -H 'kbn-xsrf: true' --form "file=@${objects}")"
echo "${result}"
if ! grep -q '"success":true' <<<"${result}"; then
  echo "setup: the saved objects import failed" >&2
  exit 1
fi
curl -fsS -X POST "${kibana}/api/data_views/default" \
  -H 'kbn-xsrf: true' -H 'Content-Type: application/json' \
  --data '{"data_view_id": "k8s-event", "force": true}'
echo
echo "setup: Kibana saved objects imported; open ${KIBANA_PUBLIC_URL:-http://localhost:5601}/app/dashboards"
