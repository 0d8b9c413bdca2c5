{{/* Names and labels. */}}
{{- define "receiver.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "receiver.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "receiver.selectorLabels" -}}
app.kubernetes.io/name: {{ include "receiver.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "receiver.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "receiver.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "receiver.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "receiver.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "receiver.secretName" -}}
{{- default (printf "%s-auth" (include "receiver.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

{{- define "receiver.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/*
The playbooks the release deploys, as YAML: file name -> text. The shipped
ones that are switched on (from the chart's playbooks/ directory, kept equal
to the repository's by a test) and the user's own. Empty with remediation off.
*/}}
{{- define "receiver.playbooks" -}}
{{- $files := dict -}}
{{- if .Values.remediation.enabled -}}
{{- range $name, $on := .Values.remediation.shippedPlaybooks -}}
{{- if $on -}}
{{- $path := printf "playbooks/%s.yaml" $name -}}
{{- $text := $.Files.Get $path -}}
{{- if not $text -}}
{{- fail (printf "remediation.shippedPlaybooks.%s: no such shipped playbook (%s)" $name $path) -}}
{{- end -}}
{{- $_ := set $files (printf "%s.yaml" $name) $text -}}
{{- end -}}
{{- end -}}
{{- range $name, $playbook := .Values.remediation.playbooks -}}
{{- $file := ternary $name (printf "%s.yaml" $name) (hasSuffix ".yaml" $name) -}}
{{- $_ := set $files $file (ternary $playbook (toYaml $playbook) (kindIs "string" $playbook)) -}}
{{- end -}}
{{- end -}}
{{- toYaml $files -}}
{{- end -}}

{{/*
The permissions the deployed playbooks need, as a sorted JSON list of
"group|resource|verb". What each action needs on each kind of target comes
from files/actions.yaml, generated from the daemon's registry of actions
(receiver/playbooks/actions/) by `receiver playbooks rbac --chart-table`; a
test keeps the file equal to the registry, and another renders the chart and
compares its rules with `receiver playbooks rbac`.
*/}}
{{- define "receiver.permissions" -}}
{{- $table := include "receiver.actionTable" . | fromYaml -}}
{{- $actions := $table.actions -}}
{{- $found := dict -}}
{{- range $file, $text := (include "receiver.playbooks" . | fromYaml) -}}
{{- $playbook := fromYaml $text -}}
{{- if hasKey $playbook "Error" -}}
{{- fail (printf "playbook %s is not YAML: %s" $file $playbook.Error) -}}
{{- end -}}
{{- range $step := $playbook.spec.steps -}}
{{- $action := toString $step.action -}}
{{- if not (hasKey $actions $action) -}}
{{- fail (printf "playbook %s: step %s: unknown action %q" $file (toString $step.name) $action) -}}
{{- end -}}
{{- $entry := get $actions $action -}}
{{- if $entry.kinds -}}
{{- $kinds := list (default $entry.default (dig "target" "kind" "" $step)) -}}
{{- $rules := list -}}
{{- $of := toString (dig "target" "owner_of" "kind" "" $step) -}}
{{- if $of -}}
{{- /* owner_of: resolving the owner, and each kind of owner the step accepts (its kind, when it names one) */ -}}
{{- $accepted := dig "owners" $of (list) $entry -}}
{{- if not $accepted -}}
{{- fail (printf "playbook %s: step %s: %s cannot act on the owner of a %s" $file (toString $step.name) $action $of) -}}
{{- end -}}
{{- $kinds = $accepted -}}
{{- with (dig "target" "kind" "" $step) -}}{{- $kinds = list . -}}{{- end -}}
{{- $rules = get $table.resolve $of -}}
{{- end -}}
{{- range $kind := $kinds -}}
{{- if not (hasKey $entry.kinds $kind) -}}
{{- fail (printf "playbook %s: step %s: %s cannot act on %s" $file (toString $step.name) $action $kind) -}}
{{- end -}}
{{- $rules = concat $rules (get $entry.kinds $kind) -}}
{{- end -}}
{{- range $rule := $rules -}}
{{- range $group := $rule.apiGroups -}}{{- range $resource := $rule.resources -}}{{- range $verb := $rule.verbs -}}
{{- $_ := set $found (printf "%s|%s|%s" $group $resource $verb) true -}}
{{- end -}}{{- end -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- keys $found | sortAlpha | toJson -}}
{{- end -}}

{{/* The registry of actions as the chart sees it (generated: see receiver.permissions). */}}
{{- define "receiver.actionTable" -}}
{{- $text := .Files.Get "files/actions.yaml" -}}
{{- if not $text -}}
{{- fail "files/actions.yaml is missing: receiver playbooks rbac --chart-table > charts/receiver/files/actions.yaml" -}}
{{- end -}}
{{- $text -}}
{{- end -}}

{{/* RBAC rules for the permissions given (a JSON list), one rule per group and resource, verbs sorted. */}}
{{- define "receiver.rules" -}}
{{- $byResource := dict -}}
{{- range $p := (fromJsonArray .) -}}
{{- $parts := splitList "|" $p -}}
{{- $key := printf "%s|%s" (index $parts 0) (index $parts 1) -}}
{{- $_ := set $byResource $key (append (default (list) (get $byResource $key)) (index $parts 2)) -}}
{{- end -}}
{{- range $key := (keys $byResource | sortAlpha) }}
- apiGroups: [{{ index (splitList "|" $key) 0 | quote }}]
  resources: [{{ index (splitList "|" $key) 1 | quote }}]
  verbs: [{{ range $i, $v := (get $byResource $key | sortAlpha) }}{{ if $i }}, {{ end }}{{ $v | quote }}{{ end }}]
{{- end -}}
{{- end -}}

{{/* The permissions on namespaced resources, and on cluster-scoped ones (nodes), as JSON lists. */}}
{{- define "receiver.namespacedPermissions" -}}
{{- $scoped := (include "receiver.actionTable" . | fromYaml).clusterScoped -}}
{{- $out := list -}}
{{- range $p := (include "receiver.permissions" . | fromJsonArray) -}}
{{- $parts := splitList "|" $p -}}
{{- if not (has (printf "%s|%s" (index $parts 0) (index $parts 1)) $scoped) -}}{{- $out = append $out $p -}}{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{- define "receiver.clusterPermissions" -}}
{{- $scoped := (include "receiver.actionTable" . | fromYaml).clusterScoped -}}
{{- $out := list -}}
{{- range $p := (include "receiver.permissions" . | fromJsonArray) -}}
{{- $parts := splitList "|" $p -}}
{{- if has (printf "%s|%s" (index $parts 0) (index $parts 1)) $scoped -}}{{- $out = append $out $p -}}{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* Where playbooks may act: the allowed namespaces, or the release's own when none are listed (namespaced RBAC). */}}
{{- define "receiver.namespaces" -}}
{{- $allow := .Values.remediation.namespaces.allow -}}
{{- if and (not $allow) (not .Values.remediation.clusterWide) -}}
{{- $allow = list .Release.Namespace -}}
{{- end -}}
{{- range $ns := $allow -}}
{{- if has $ns $.Values.remediation.namespaces.deny -}}
{{- fail (printf "namespace %s is both allowed and denied (remediation.namespaces)" $ns) -}}
{{- end -}}
{{- end -}}
{{- toJson $allow -}}
{{- end -}}

{{/* Whether the pod gets Kubernetes credentials: evidence on, or remediation on and some playbook needs a permission. */}}
{{- define "receiver.needsApi" -}}
{{- if or .Values.evidence.enabled (and .Values.remediation.enabled (include "receiver.permissions" . | fromJsonArray)) -}}true{{- end -}}
{{- end -}}

{{/* Whether some playbook needs the API (its RBAC). */}}
{{- define "receiver.remediationNeedsApi" -}}
{{- if and .Values.remediation.enabled (include "receiver.permissions" . | fromJsonArray) -}}true{{- end -}}
{{- end -}}

{{/* The daemon's config.yaml: the user's settings, with what the chart owns set over them. */}}
{{- define "receiver.config" -}}
{{- $remediation := dict
      "playbook_dirs" (ternary (list "/etc/receiver/playbooks") (list) .Values.remediation.enabled)
      "namespaces" (dict "allow" (include "receiver.namespaces" . | fromJsonArray) "deny" .Values.remediation.namespaces.deny)
      "guardrails" (mustMergeOverwrite (deepCopy .Values.remediation.guardrails) (dict "dry_run" .Values.remediation.dryRun)) -}}
{{- $evidence := mustMergeOverwrite (deepCopy (default dict .Values.config.evidence)) (dict "enabled" .Values.evidence.enabled) -}}
{{- $owned := dict
      "evidence" $evidence
      "listen" (printf "0.0.0.0:%d" (int .Values.service.port))
      "data_dir" "/data"
      "shutdown_timeout" (printf "%ds" (int .Values.shutdownTimeoutSeconds))
      "remediation" $remediation -}}
{{- toYaml (mustMergeOverwrite (deepCopy .Values.config) $owned) -}}
{{- end -}}
