{{/* The release's base name, at most 63 characters (it prefixes others). */}}
{{- define "zerotouch.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "zerotouch.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "zerotouch.labels" -}}
{{ include "zerotouch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "zerotouch.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "zerotouch.dataKeySecret" -}}
{{- .Values.dataKey.existingSecret | default (printf "%s-data-key" (include "zerotouch.fullname" .)) -}}
{{- end -}}

{{- define "zerotouch.redisName" -}}
{{- printf "%s-redis" (include "zerotouch.fullname" .) -}}
{{- end -}}

{{/* The Secret and key holding the Redis password, "" for none. */}}
{{- define "zerotouch.redisPasswordSecret" -}}
{{- if .Values.redis.enabled -}}
{{- if .Values.redis.auth }}{{ include "zerotouch.redisName" . }}{{ end -}}
{{- else -}}
{{- .Values.externalRedis.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "zerotouch.redisPasswordKey" -}}
{{- if .Values.redis.enabled }}password{{ else }}{{ .Values.externalRedis.passwordKey }}{{ end -}}
{{- end -}}

{{/*
zerotouch.yaml: the chart's settings (where the pod keeps its files, the
listeners its ports name, Redis) over .Values.config.
*/}}
{{- define "zerotouch.config" -}}
{{- $listen := dict "grpc" "0.0.0.0:8444" "http" "0.0.0.0:8443" "mqtt" "0.0.0.0:8883" -}}
{{- if .Values.metrics.enabled -}}
{{- $_ := set $listen "metrics" (printf "0.0.0.0:%d" (int .Values.metrics.port)) -}}
{{- end -}}
{{- $redis := dict -}}
{{- if .Values.redis.enabled -}}
{{- $redis = dict "addrs" (list (printf "%s:6379" (include "zerotouch.redisName" .))) "cluster" false "key_prefix" "zt" -}}
{{- else -}}
{{- $ext := .Values.externalRedis -}}
{{- if not $ext.addrs -}}
{{- fail "zerotouch: set externalRedis.addrs, or redis.enabled: true (replicas share one Redis)" -}}
{{- end -}}
{{- $redis = dict "addrs" $ext.addrs "cluster" $ext.cluster "master_name" $ext.masterName "username" $ext.username "key_prefix" $ext.keyPrefix -}}
{{- if $ext.tls.enabled -}}
{{- $rtls := dict "enabled" true "server_name" $ext.tls.serverName -}}
{{- if $ext.tls.secretName -}}
{{- $_ := set $rtls "ca_file" "/etc/zerotouch/redis-tls/ca.crt" -}}
{{- if $ext.tls.clientCert -}}
{{- $_ := set $rtls "cert_file" "/etc/zerotouch/redis-tls/tls.crt" -}}
{{- $_ := set $rtls "key_file" "/etc/zerotouch/redis-tls/tls.key" -}}
{{- end -}}
{{- end -}}
{{- $_ := set $redis "tls" $rtls -}}
{{- end -}}
{{- end -}}
{{- $chart := dict
  "data_dir" "/var/lib/zerotouch"
  "listen" $listen
  "tls" (dict "cert_file" "/etc/zerotouch/tls/tls.crt" "key_file" "/etc/zerotouch/tls/tls.key")
  "storage" (dict "backend" "redis" "redis" $redis)
  "secrets" (dict "data_key_file" "/etc/zerotouch/data-key/data.key")
-}}
{{- toYaml (mergeOverwrite (deepCopy .Values.config) $chart) -}}
{{- end -}}
