{{/* K8SEV_EXPLORER_AUTH for the values: kubernetes unless explorer.auth names a Secret (token, or basic
     when it holds only a basic-auth pair; the worker takes one mode, and a token mode accepts the pair
     too) or explorer.allowAnonymous opens the page. Contradictory values fail here. */}}
{{- define "k8sev.explorerAuth" -}}
{{- $explorer := .Values.explorer -}}
{{- $auth := $explorer.auth -}}
{{- if and $explorer.allowAnonymous (or $auth.existingSecret $auth.tokenKey $auth.username $auth.passwordKey) -}}
{{- fail "explorer.allowAnonymous=true with explorer.auth.*: the page is either open or protected; unset explorer.auth, or allowAnonymous" -}}
{{- end -}}
{{- if $explorer.allowAnonymous -}}
none
{{- else if $auth.tokenKey -}}
token
{{- else if $auth.passwordKey -}}
basic
{{- else -}}
kubernetes
{{- end -}}
{{- end -}}
