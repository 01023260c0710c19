{{/* Chart name, overridable. */}}
{{- define "hostrefresh.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Object-name prefix: <release>-<chart>, or the release name when it already contains the chart name. */}}
{{- define "hostrefresh.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "hostrefresh.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "hostrefresh.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hostrefresh
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component (pass a dict: ctx, component). */}}
{{- define "hostrefresh.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hostrefresh.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Service account names. */}}
{{- define "hostrefresh.operatorServiceAccount" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (printf "%s-operator" (include "hostrefresh.fullname" .)) .Values.operator.serviceAccount.name }}
{{- else }}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "hostrefresh.agentServiceAccount" -}}
{{- if .Values.agent.serviceAccount.create }}
{{- default (printf "%s-agent" (include "hostrefresh.fullname" .)) .Values.agent.serviceAccount.name }}
{{- else }}
{{- required "agent.serviceAccount.name is required when agent.serviceAccount.create is false" .Values.agent.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* An image reference (dict "ctx" $ "image" .Values.<component>.image): the prefix (image.prefix), a slash, the repository,
then @digest or :tag (default: the chart's appVersion). */}}
{{- define "hostrefresh.image" -}}
{{- $values := .ctx.Values -}}
{{- $repository := .image.repository -}}
{{- with trimSuffix "/" $values.image.prefix }}{{ $repository = printf "%s/%s" . $repository }}{{ end -}}
{{- if .image.digest }}
{{- printf "%s@%s" $repository .image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (default .ctx.Chart.AppVersion $values.image.tag) }}
{{- end }}
{{- end }}

{{/* agent.imageDirs without trailing slashes, as a JSON list; each must be an absolute path. */}}
{{- /* agent.kernelParams as a JSON list (for the admission policy's CEL). */ -}}
{{- define "hostrefresh.kernelParams" -}}
{{- .Values.agent.kernelParams | default list | toJson }}
{{- end }}

{{- define "hostrefresh.imageDirs" -}}
{{- $dirs := list }}
{{- range .Values.agent.imageDirs }}
{{- if not (hasPrefix "/" .) }}
{{- fail (printf "agent.imageDirs: %q is not an absolute path" .) }}
{{- end }}
{{- $dirs = append $dirs (trimSuffix "/" .) }}
{{- end }}
{{- if not $dirs }}
{{- fail "agent.imageDirs: name at least one directory the target images may come from" }}
{{- end }}
{{- toJson $dirs }}
{{- end }}

{{/* Combinations of values the binaries would refuse, or that would leave monitoring broken or doubled,
which no single value's schema can see: each fails the render, naming the values and the fix.
Rendered by templates/checks.yaml. */}}
{{- define "hostrefresh.checks" -}}
{{- range $component := list "operator" "agent" }}
{{- $values := index $.Values $component }}
{{- if and $values.metricsPort (eq (int64 $values.metricsPort) (int64 $values.healthPort)) }}
{{- fail (printf "%s.metricsPort and %s.healthPort are both %d: the %s refuses to start with one port for both servers; give them different ports (or 0 to turn one off)" $component $component (int64 $values.metricsPort) $component) }}
{{- end }}
{{- end }}
{{- $v := .Values }}
{{- if and $v.podMonitor.enabled $v.serviceMonitor.enabled }}
{{- fail "podMonitor.enabled and serviceMonitor.enabled are both true: both would scrape the same pods as the same jobs, so every series (and every alert) would come twice; turn one of them off" }}
{{- end }}
{{- if and $v.serviceMonitor.enabled (not $v.metricsService.enabled) }}
{{- fail "serviceMonitor.enabled needs metricsService.enabled (the ServiceMonitors scrape those Services); turn metricsService on, or use podMonitor.enabled instead" }}
{{- end }}
{{- if $v.prometheusRule.enabled }}
{{- if not $v.prometheusRule.runbookBaseUrl }}
{{- fail "prometheusRule.runbookBaseUrl is empty: set it to where docs/troubleshooting.md is served (each alert's runbook_url is it with the alert's section appended)" }}
{{- end }}
{{- if not (or $v.operator.metricsPort $v.agent.metricsPort) }}
{{- fail "prometheusRule.enabled but operator.metricsPort and agent.metricsPort are both 0: no alert has anything to read; give them a port, or turn prometheusRule off" }}
{{- end }}
{{- if not (or $v.podMonitor.enabled $v.serviceMonitor.enabled $v.prometheusRule.ownScrapeConfig) }}
{{- fail "prometheusRule.enabled but nothing scrapes the operator and the agents, so the agent alerts could never fire: turn on podMonitor.enabled or serviceMonitor.enabled, or set prometheusRule.ownScrapeConfig=true if your own scrape configuration scrapes the jobs metricsJobs.operator and metricsJobs.agent" }}
{{- end }}
{{- end }}
{{- end }}
