{{/* The chart's name, or nameOverride. */}}
{{- define "shinsa.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: fullnameOverride, or <release>-<chart> unless the release name already holds the chart's. */}}
{{- define "shinsa.fullname" -}}
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

{{- define "shinsa.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "shinsa.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shinsa.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "shinsa.labels" -}}
helm.sh/chart: {{ include "shinsa.chart" . }}
{{ include "shinsa.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: shinsa
{{- end }}

{{- define "shinsa.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "shinsa.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "shinsa.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion (toString .Values.image.tag)) }}
{{- end }}
{{- end }}

{{/* The ClusterRole holding the namespaced rules (bound cluster-wide, or per watched namespace). */}}
{{- define "shinsa.operatorRoleName" -}}
{{- printf "%s-operator" (include "shinsa.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The ClusterRole holding the cluster-scoped rules (always bound cluster-wide). */}}
{{- define "shinsa.clusterRoleName" -}}
{{- printf "%s-cluster" (include "shinsa.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
