{{/* hostrefresh's alerting rules (Prometheus rule-file format), shipped as the PrometheusRule's spec
(templates/prometheusrule.yaml) and unit-tested with promtool (tests/chart/promtool/). Thresholds come from
prometheusRule.alerts, runbook_url from prometheusRule.runbookBaseUrl, job names from metricsJobs; the
metrics are the operator's and the agents' (docs/operations.md, Observability). Alerts whose component
serves no metrics (metricsPort 0) are left out. Prometheus' own templates ({{ $labels.x }}) are
escaped as {{`{{ ... }}`}} so that helm leaves them alone. */}}
{{- define "hostrefresh.rules" -}}
{{- $alerts := .Values.prometheusRule.alerts }}
{{- $runbook := .Values.prometheusRule.runbookBaseUrl }}
{{- $operatorJob := .Values.metricsJobs.operator }}
{{- $agentJob := .Values.metricsJobs.agent }}
{{- $fullname := include "hostrefresh.fullname" . -}}
groups:
  - name: hostrefresh
    rules:
    {{- if .Values.operator.metricsPort }}
      - alert: HostRefreshNodeNestedTooLong
        # Nested virtualization costs the node's VMs performance; a refresh nests for minutes. The age
        # of the nesting from its start time (exported only while the node is nested), on Prometheus' clock.
        expr: time() - max by (node) (hostrefresh_operator_node_nested_since_timestamp_seconds) > {{ $alerts.nestedTooLong.seconds | int64 }}
        for: {{ $alerts.nestedTooLong.for }}
        labels:
          severity: warning
        annotations:
          summary: "Node {{`{{ $labels.node }}`}} has run nested for {{`{{ $value | humanizeDuration }}`}}"
          description: >-
            The refresh of node {{`{{ $labels.node }}`}} keeps it nested (its VMs run under the L0) far longer
            than a refresh takes. Check it with `kubectl hostrefresh describe {{`{{ $labels.node }}`}}`; abort it
            with `kubectl hostrefresh abort {{`{{ $labels.node }}`}}` to roll back (before Retiring).
          runbook_url: {{ printf "%s#a-node-stays-nested" $runbook | quote }}
      - alert: HostRefreshFailed
        expr: sum by (result, scope) (increase(hostrefresh_operator_refreshes_total{result=~"Failed|RolledBack"}[{{ $alerts.refreshFailed.window }}])) > 0
        labels:
          severity: warning
        annotations:
          summary: "{{`{{ $value | humanize }}`}} node refresh(es) of scope {{`{{ $labels.scope }}`}} ended {{`{{ $labels.result }}`}} in the last {{ $alerts.refreshFailed.window }}"
          description: >-
            A refresh ended without the target (RolledBack: the node serves from its old host; Failed: past the
            point of no return, the node serves from the new host but did not verify). `kubectl hostrefresh get -o wide`
            shows which and why.
          runbook_url: {{ printf "%s#what-each-reason-means" $runbook | quote }}
      - alert: HostRefreshPlanHalted
        expr: max by (plan) (hostrefresh_operator_plan_halted) == 1
        for: {{ $alerts.planHalted.for }}
        labels:
          severity: warning
        annotations:
          summary: "RefreshPlan {{`{{ $labels.plan }}`}} halted: its failure threshold was reached"
          description: >-
            No new node starts until a human looks. `kubectl hostrefresh status {{`{{ $labels.plan }}`}}` lists the
            failed nodes; `kubectl hostrefresh retry {{`{{ $labels.plan }}`}}` retries them.
          runbook_url: {{ printf "%s#a-plan-halted" $runbook | quote }}
      - alert: HostRefreshNoLeader
        # Every replica exports the gauge. None at 1 means nobody acts; no gauge at all counts only while
        # the operator's job is scraped (its `up` exists), so a Prometheus that does not scrape the
        # operator gets no alert that lies about the leader (HostRefreshOperatorNotScraped says that).
        expr: >-
          (max(hostrefresh_operator_leader) < 1)
          or on() (absent(hostrefresh_operator_leader) and on() (count(up{job={{ $operatorJob | quote }}}) > 0))
        for: {{ $alerts.noLeader.for }}
        labels:
          severity: critical
        annotations:
          summary: "No hostrefresh operator replica leads"
          description: >-
            No refresh is started, followed or rolled back while no replica holds the Lease
            hostrefresh-operator. Check the operator pods and their logs.
          runbook_url: {{ printf "%s#no-operator-leads" $runbook | quote }}
      - alert: HostRefreshOperatorNotScraped
        # kube-state-metrics' count of the Deployment's replicas against the operator's scrape targets.
        expr: >-
          max(kube_deployment_spec_replicas{namespace={{ .Release.Namespace | quote }}, deployment={{ printf "%s-operator" $fullname | quote }}})
          - (count(up{job={{ $operatorJob | quote }}}) or vector(0)) > 0
        for: {{ $alerts.notScraped.for }}
        labels:
          severity: warning
        annotations:
          summary: "{{`{{ $value }}`}} hostrefresh operator replica(s) not scraped as job {{ $operatorJob }}"
          description: >-
            The Deployment {{ .Release.Namespace }}/{{ $fullname }}-operator wants more replicas than Prometheus has
            targets in the job {{ $operatorJob }}: a replica is not running, or nothing scrapes it under that
            job name, so HostRefreshNoLeader cannot see it.
          runbook_url: {{ printf "%s#an-operator-or-agent-is-not-scraped" $runbook | quote }}
    {{- end }}
    {{- if .Values.agent.metricsPort }}
      - alert: HostRefreshAgentDown
        expr: up{job={{ $agentJob | quote }}} == 0
        for: {{ $alerts.agentDown.for }}
        labels:
          severity: critical
        annotations:
          summary: "The hostrefresh agent on {{`{{ $labels.instance }}`}} is down"
          description: >-
            Without its agent a node cannot refresh, and a refresh under way on it rolls back (or fails,
            past Retiring) once timeouts.agentSilenceSeconds pass.
          runbook_url: {{ printf "%s#an-agent-is-down" $runbook | quote }}
      - alert: HostRefreshAgentNotScraped
        # kube-state-metrics' count of the DaemonSet's agents against the agents' scrape targets: an agent
        # that is no target at all (not running, not scraped) never has an `up` of 0.
        expr: >-
          max(kube_daemonset_status_desired_number_scheduled{namespace={{ .Release.Namespace | quote }}, daemonset={{ printf "%s-agent" $fullname | quote }}})
          - (count(up{job={{ $agentJob | quote }}}) or vector(0)) > 0
        for: {{ $alerts.notScraped.for }}
        labels:
          severity: warning
        annotations:
          summary: "{{`{{ $value }}`}} hostrefresh agent(s) not scraped as job {{ $agentJob }}"
          description: >-
            The DaemonSet {{ .Release.Namespace }}/{{ $fullname }}-agent should run more agents than Prometheus
            has targets in the job {{ $agentJob }}: an agent is not running, or nothing scrapes it under that
            job name, so HostRefreshAgentDown and HostRefreshVMsLost cannot see it.
          runbook_url: {{ printf "%s#an-operator-or-agent-is-not-scraped" $runbook | quote }}
      - alert: HostRefreshVMsLost
        expr: max by (node) (hostrefresh_agent_vms_lost) > 0
        for: {{ $alerts.vmsLost.for }}
        labels:
          severity: critical
        annotations:
          summary: "{{`{{ $value }}`}} VM(s) of node {{`{{ $labels.node }}`}} run nowhere"
          description: >-
            The agent on node {{`{{ $labels.node }}`}} keeps records of VMs whose last host died with them: no
            QEMU runs them on either host. The records are kept for a person to look at.
          runbook_url: {{ printf "%s#vms-are-lost" $runbook | quote }}
    {{- end }}
{{- end }}
