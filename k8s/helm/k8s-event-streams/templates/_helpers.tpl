{{/* The release's base name: the release name, prefixed to the chart name unless it contains it. */}}
{{- define "k8sev.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* What selects this release's worker pods (never changes on upgrade). */}}
{{- define "k8sev.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: worker
{{- end -}}

{{- define "k8sev.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Where the Secrets' files are mounted in the container. */}}
{{- define "k8sev.secretsDir" -}}/etc/k8s-event-streams{{- end -}}

{{/* The K8SEV_* variables the Deployment sets itself (extraEnv may not set them: env would win). */}}
{{- define "k8sev.deploymentEnv" -}}
K8SEV_IDENTITY,K8SEV_ROLE,K8SEV_WEB_HOST,K8SEV_WEB_PORT,K8SEV_DATA_DIR,K8SEV_KAFKA_PASSWORD_FILE,K8SEV_KAFKA_CA_FILE,K8SEV_KAFKA_CERT_FILE,K8SEV_KAFKA_KEY_FILE,K8SEV_ES_PASSWORD_FILE,K8SEV_ES_API_KEY_FILE,K8SEV_ES_CA_CERTS,K8SEV_ES_CLIENT_CERT,K8SEV_ES_CLIENT_KEY,K8SEV_EXPLORER_TOKEN_FILE,K8SEV_EXPLORER_PASSWORD_FILE
{{- end -}}

{{/* The Secret volumes the Deployment may mount, in order. */}}
{{- define "k8sev.secretVolumes" -}}kafka-tls,kafka-sasl,search-credentials,search-tls,explorer-auth{{- end -}}

{{/* The secretName and items of one Secret volume (one of k8sev.secretVolumes); empty when the values
     ask for no such files. Called with (list $ volume). */}}
{{- define "k8sev.secretItems" -}}
{{- $root := index . 0 -}}
{{- $volume := index . 1 -}}
{{- $kafka := $root.Values.kafka -}}
{{- $search := $root.Values.search -}}
{{- $auth := $root.Values.explorer.auth -}}
{{- $secret := "" -}}
{{- $items := list -}}
{{- if eq $volume "kafka-tls" -}}
{{- $secret = $kafka.tls.existingSecret -}}
{{- $items = list (list $kafka.tls.caKey "ca.crt") (list $kafka.tls.certKey "tls.crt") (list $kafka.tls.keyKey "tls.key") -}}
{{- else if eq $volume "kafka-sasl" -}}
{{- if hasPrefix "SASL_" $kafka.securityProtocol -}}
{{- $secret = $kafka.sasl.existingSecret -}}
{{- end -}}
{{- $items = list (list $kafka.sasl.passwordKey "password") -}}
{{- else if eq $volume "search-credentials" -}}
{{- $secret = $search.existingSecret -}}
{{- $items = list (list $search.passwordKey "password") (list $search.apiKeyKey "api-key") -}}
{{- else if eq $volume "search-tls" -}}
{{- $secret = $search.tls.existingSecret -}}
{{- $items = list (list $search.tls.caKey "ca.crt") (list $search.tls.certKey "tls.crt") (list $search.tls.keyKey "tls.key") -}}
{{- else if eq $volume "explorer-auth" -}}
{{- $secret = $auth.existingSecret -}}
{{- $items = list (list $auth.tokenKey "token") (list $auth.passwordKey "password") -}}
{{- end -}}
{{- if $secret }}
secretName: {{ $secret }}
items:
{{- range $items }}
{{- if index . 0 }}
  - key: {{ index . 0 }}
    path: {{ index . 1 }}
{{- end }}
{{- end }}
{{- end -}}
{{- end -}}

{{/* The runbook base of rules/k8s-event-streams.rules.yaml, which prometheusRule.runbookBaseUrl replaces. */}}
{{- define "k8sev.runbookBase" -}}https://k8s-event-streams.example/docs/runbooks.md{{- end -}}

{{/* The security contexts 0.1.0 rendered, for a release whose values predate podSecurityContext and
     securityContext (values.yaml holds the same defaults; a test checks they agree). */}}
{{- define "k8sev.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "k8sev.securityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* The label that tells the split topology's Deployments apart (in their selectors too). */}}
{{- define "k8sev.roleLabel" -}}k8s-event-streams.io/role{{- end -}}

{{/* The worker Deployments of the topology, a YAML list: name, role (K8SEV_ROLE; "" sets nothing),
     replicas (null: an HPA owns it), resources, serviceAccount, explorer (serves /ui/), and the
     selector labels beyond k8sev.selectorLabels (none for allInOne: its selector predates split and
     a Deployment's selector cannot change). */}}
{{- define "k8sev.workloads" -}}
{{- $fullname := include "k8sev.fullname" . -}}
{{- if eq (include "k8sev.topology" .) "split" -}}
{{- $streams := .Values.split.streams -}}
- name: {{ $fullname }}-ingest
  role: ingest
  replicas: {{ .Values.split.ingest.replicas }}
  resources: {{ .Values.split.ingest.resources | toJson }}
  serviceAccount: {{ $fullname }}
  explorer: false
  selector: {{ dict (include "k8sev.roleLabel" .) "ingest" | toJson }}
- name: {{ $fullname }}-streams
  role: streams
  replicas: {{ if $streams.autoscaling.enabled }}null{{ else }}{{ $streams.replicas }}{{ end }}
  resources: {{ $streams.resources | toJson }}
  serviceAccount: {{ $fullname }}-streams
  explorer: true
  selector: {{ dict (include "k8sev.roleLabel" .) "streams" | toJson }}
{{- else -}}
- name: {{ $fullname }}
  role: {{ ternary "" .Values.role (eq .Values.role "all") | quote }}
  replicas: {{ .Values.replicas }}
  resources: {{ .Values.resources | toJson }}
  serviceAccount: {{ $fullname }}
  explorer: true
  selector: {}
{{- end -}}
{{- end -}}

{{/* split or allInOne; a release upgraded with --reuse-values from 0.1.0 has no topology: allInOne, what 0.1.0 rendered. */}}
{{- define "k8sev.topology" -}}
{{- if hasKey .Values "topology" -}}{{ .Values.topology }}{{- else -}}allInOne{{- end -}}
{{- end -}}

{{/* The explorer's rules (K8SEV_EXPLORER_AUTH=kubernetes), for the pods that serve it. */}}
{{- define "k8sev.reviewRules" -}}
# K8SEV_EXPLORER_AUTH=kubernetes: who a bearer token is, and whether they may list events where.
# Creating a review reads nothing and changes nothing; it is how a service asks the API server.
- apiGroups: ["authentication.k8s.io"]
  resources: ["tokenreviews"]
  verbs: ["create"]
- apiGroups: ["authorization.k8s.io"]
  resources: ["subjectaccessreviews"]
  verbs: ["create"]
{{- end -}}
