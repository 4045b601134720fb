{{/*
Names, labels and selectors. Kubernetes names are limited to 63 characters: every name is truncated there
and loses a trailing "-".
*/}}

{{/* The chart's name, or nameOverride. */}}
{{- define "startbench.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name: fullnameOverride, else "<release>-<name>" (just the release when it holds the name). */}}
{{- define "startbench.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* A name for a part of the release: "<fullname>-<suffix>", still within 63 characters. */}}
{{- define "startbench.componentName" -}}
{{- $suffix := .suffix }}
{{- $base := include "startbench.fullname" .root | trunc (int (sub 62 (len $suffix))) | trimSuffix "-" }}
{{- printf "%s-%s" $base $suffix }}
{{- end }}

{{/* Chart name and version, as used by the helm.sh/chart label. */}}
{{- define "startbench.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object of the release carries. */}}
{{- define "startbench.labels" -}}
helm.sh/chart: {{ include "startbench.chart" . }}
{{ include "startbench.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: startbench
{{- end }}

{{/* Labels that select the operator's pods (never change them on upgrade: a Deployment selector is immutable). */}}
{{- define "startbench.selectorLabels" -}}
app.kubernetes.io/name: {{ include "startbench.name" . }}
app.kubernetes.io/instance: {{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "startbench.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "startbench.fullname" .) .Values.serviceAccount.name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* An image reference from {repository, tag, digest}; tag defaults to the chart's appVersion. */}}
{{- define "startbench.image" -}}
{{- $tag := .image.tag | default .root.Chart.AppVersion }}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository $tag }}
{{- end }}
{{- end }}

{{/*
True ("true") when the operator needs cluster-wide access to the namespaced resources it works with: it watches
every namespace, or a glob pattern that new namespaces may match.
*/}}
{{- define "startbench.clusterWide" -}}
{{- $wide := not .Values.operator.watchNamespaces }}
{{- range .Values.operator.watchNamespaces }}
{{- if or (contains "*" .) (contains "?" .) }}{{ $wide = true }}{{ end }}
{{- end }}
{{- if $wide }}true{{ end }}
{{- end }}

{{/* The rules the operator needs in every namespace it watches (a Role each, or one ClusterRole). */}}
{{- define "startbench.workloadRules" }}
  - apiGroups: ["startbench.dev"]
    resources: ["benchmarks"]
    verbs: ["get", "list", "watch", "patch"]
  - apiGroups: ["startbench.dev"]
    resources: ["benchmarks/status"]
    verbs: ["get", "patch"]
  - apiGroups: ["startbench.dev"]
    resources: ["benchmarks/finalizers"]
    verbs: ["update"]
  - apiGroups: [""]
    resources: ["pods"]
    verbs: ["get", "list", "watch", "create", "delete", "patch"]
  - apiGroups: [""]
    resources: ["events"]
    verbs: ["create", "list", "watch"]
  - apiGroups: [""]
    resources: ["configmaps"]
    verbs: ["get", "list", "create", "update"]
{{- end }}

{{/* The ConfigMap holding the builds' CA bundle (build.caBundle): the chart's own when given as PEM, else the named
one, else nothing. */}}
{{- define "startbench.buildCAConfigMap" -}}
{{- if .Values.build.caBundle.pem }}
{{- include "startbench.componentName" (dict "root" . "suffix" "build-ca") }}
{{- else if .Values.build.caBundle.configMap }}
{{- .Values.build.caBundle.configMap }}
{{- end }}
{{- end }}
