{{/* Names: every object is prefixed with the release's full name, so two releases never collide. */}}
{{- define "f7t4jhub.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "f7t4jhub.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "f7t4jhub.hub" -}}{{ include "f7t4jhub.fullname" . }}-hub{{- end -}}
{{- define "f7t4jhub.proxy" -}}{{ include "f7t4jhub.fullname" . }}-proxy{{- end -}}
{{- define "f7t4jhub.proxyPublic" -}}{{ include "f7t4jhub.fullname" . }}-proxy-public{{- end -}}
{{- define "f7t4jhub.proxyApi" -}}{{ include "f7t4jhub.fullname" . }}-proxy-api{{- end -}}
{{- define "f7t4jhub.hubConfig" -}}{{ include "f7t4jhub.fullname" . }}-hub-config{{- end -}}
{{- define "f7t4jhub.hubExtra" -}}{{ include "f7t4jhub.fullname" . }}-hub-extra{{- end -}}
{{- define "f7t4jhub.secretsJob" -}}{{ include "f7t4jhub.fullname" . }}-secrets{{- end -}}

{{/* The Secret with the generated values (proxy-auth-token, cookie-secret, crypt-key). */}}
{{- define "f7t4jhub.hubSecret" -}}
{{- default (printf "%s-hub-secrets" (include "f7t4jhub.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* The Secret with the OIDC client (oauth-client-id, oauth-client-secret). */}}
{{- define "f7t4jhub.oidcSecret" -}}
{{- if and (eq .Values.oidc.source "secret") .Values.oidc.existingSecret -}}
{{- .Values.oidc.existingSecret -}}
{{- else -}}
{{- printf "%s-oidc" (include "f7t4jhub.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "f7t4jhub.pvc" -}}
{{- default (printf "%s-hub-db" (include "f7t4jhub.fullname" .)) .Values.hub.db.existingClaim -}}
{{- end -}}

{{/* Labels: scoped to the release (instance) and the component. */}}
{{- define "f7t4jhub.selectorLabels" -}}
app.kubernetes.io/name: {{ include "f7t4jhub.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "f7t4jhub.labels" -}}
{{ include "f7t4jhub.selectorLabels" . }}
app.kubernetes.io/part-of: f7t4jhub
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "f7t4jhub.image" -}}
{{- $tag := default .default .image.tag -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The hub's base URL with one trailing slash. */}}
{{- define "f7t4jhub.baseUrl" -}}
{{- $b := default "/" (dig "hub" "base_url" "/" .Values.hub.config) -}}
{{- printf "%s/" (trimSuffix "/" $b) -}}
{{- end -}}

{{/*
The hub configuration file (docs/hub-config.md): the site's hub.config with the
in-cluster addresses filled in where the site left them out. Data only: toYaml, no
string pasting.
*/}}
{{- define "f7t4jhub.hubConfigData" -}}
{{- $cfg := deepCopy (default dict .Values.hub.config) -}}
{{- $hub := default dict (get $cfg "hub") -}}
{{- if not (hasKey $hub "hub_connect_url") -}}
{{- $_ := set $hub "hub_connect_url" (printf "http://%s:%d" (include "f7t4jhub.hub" .) (int .Values.hub.service.port)) -}}
{{- end -}}
{{- if not (hasKey $hub "hub_bind_url") -}}
{{- $_ := set $hub "hub_bind_url" (printf "http://0.0.0.0:%d" (int .Values.hub.service.port)) -}}
{{- end -}}
{{- if and .Values.ingress.enabled .Values.ingress.host (not (hasKey $hub "public_url")) -}}
{{- $_ := set $hub "public_url" (printf "https://%s" .Values.ingress.host) -}}
{{- end -}}
{{- $_ := set $cfg "hub" $hub -}}
{{- $proxy := default dict (get $cfg "proxy") -}}
{{- if not (hasKey $proxy "api_url") -}}
{{- $_ := set $proxy "api_url" (printf "http://%s:%d" (include "f7t4jhub.proxyApi" .) (int .Values.proxy.service.apiPort)) -}}
{{- end -}}
{{- $_ := set $cfg "proxy" $proxy -}}
{{- $spawner := default dict (get $cfg "spawner") -}}
{{- if and .Values.ingress.enabled .Values.ingress.host (not (hasKey $spawner "hub_connect_url")) -}}
{{- $_ := set $spawner "hub_connect_url" (printf "https://%s" .Values.ingress.host) -}}
{{- end -}}
{{- $_ := set $cfg "spawner" $spawner -}}
{{- $auth := default dict (get $cfg "authenticator") -}}
{{- if and .Values.ingress.enabled .Values.ingress.host (ne (default "generic-oauth" (get $auth "type")) "dummy") (not (hasKey $auth "oauth_callback_url")) -}}
{{- $_ := set $auth "oauth_callback_url" (printf "https://%s%shub/oauth_callback" .Values.ingress.host (include "f7t4jhub.baseUrl" .)) -}}
{{- end -}}
{{- $_ := set $cfg "authenticator" $auth -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* Hardened container security context (both pods). */}}
{{- define "f7t4jhub.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
