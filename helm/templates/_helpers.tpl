{{/* Names and labels. */}}
{{- define "bodywork.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "bodywork.fullname" -}}
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

{{- define "bodywork.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bodywork.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "bodywork.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "bodywork.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "bodywork.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "bodywork.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "bodywork.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "bodywork.claimName" -}}
{{- default (printf "%s-data" (include "bodywork.fullname" .)) .Values.persistence.existingClaim -}}
{{- end -}}

{{/* The service's own URL inside the cluster (stage pods fetch their code from it). */}}
{{- define "bodywork.internalUrl" -}}
{{- printf "http://%s.%s.svc:%v" (include "bodywork.fullname" .) .Release.Namespace .Values.service.port -}}
{{- end -}}

{{/*
The Ingress rule's path: ingress.path, else the path of config.public_url (the prefix the service is
served under, docs/pages.md), else /.
*/}}
{{- define "bodywork.ingressPath" -}}
{{- if .Values.ingress.path -}}
{{- .Values.ingress.path -}}
{{- else -}}
{{- default "/" ((urlParse (.Values.config.public_url | default "")).path | trimSuffix "/") -}}
{{- end -}}
{{- end -}}

{{/*
Where GitHub, GitLab, Slack and browsers reach the service, and what run links in commit statuses use;
its path is the prefix the service is served under.
*/}}
{{- define "bodywork.publicUrl" -}}
{{- if .Values.config.public_url -}}
{{- .Values.config.public_url | trimSuffix "/" -}}
{{- else if and .Values.ingress.enabled .Values.ingress.host -}}
{{- printf "%s://%s%s" (ternary "https" "http" (not (empty .Values.ingress.tlsSecretName))) .Values.ingress.host (include "bodywork.ingressPath" . | trimSuffix "/") -}}
{{- else -}}
{{- include "bodywork.internalUrl" . -}}
{{- end -}}
{{- end -}}

{{/*
Every secret the values refer to, as JSON: [{"file": "...", "ref": {...}, "key": "..."}]. A reference
{name, key} is an existing Secret, mounted at /etc/bodywork/secrets/<name>/; {value} is stored under
`key` in the chart's own Secret, mounted at /etc/bodywork/secrets/<fullname>/.
*/}}
{{- define "bodywork.secretRefs" -}}
{{- $refs := list -}}
{{- if .Values.apiToken -}}
{{- $refs = append $refs (dict "field" "api_token" "key" "api-token" "ref" .Values.apiToken) -}}
{{- end -}}
{{- range $index, $repo := .Values.repositories -}}
{{- range $field := list "webhook_secret" "api_token" "ssh_key" -}}
{{- with (get $repo $field) -}}
{{- $refs = append $refs (dict "field" $field "repo" $index "key" (printf "repository-%d-%s" $index ($field | replace "_" "-")) "ref" .) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if .Values.slack.enabled -}}
{{- range $field, $ref := dict "bot_token" .Values.slack.botToken "signing_secret" .Values.slack.signingSecret "app_token" .Values.slack.appToken -}}
{{- if $ref -}}
{{- $refs = append $refs (dict "field" $field "slack" true "key" (printf "slack-%s" ($field | replace "_" "-")) "ref" $ref) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $own := include "bodywork.fullname" $ -}}
{{- $out := list -}}
{{- range $refs -}}
{{- $secret := .ref.name | default $own -}}
{{- $key := .ref.key | default .key -}}
{{- $out = append $out (merge (dict "secret" $secret "file" (printf "/etc/bodywork/secrets/%s/%s" $secret $key)) .) -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* The service's config file (docs/service.md), built from the values. */}}
{{- define "bodywork.config" -}}
{{- $refs := include "bodywork.secretRefs" . | fromJsonArray -}}
{{- $service := omit (deepCopy .Values.config) "public_url" -}}
{{- $_ := set $service "host" "0.0.0.0" -}}
{{- $_ := set $service "port" 8000 -}}
{{- $_ := set $service "data_dir" "/var/lib/bodywork" -}}
{{- $_ := set $service "backend" "kubernetes" -}}
{{- $_ := set $service "public_url" (include "bodywork.publicUrl" .) -}}
{{- $options := deepCopy .Values.backendOptions -}}
{{- $_ := set $options "in_cluster" true -}}
{{- /* Stage pods download their run's code from this service: no ConfigMap size ceiling. */ -}}
{{- $_ := set $options "source_url" (include "bodywork.internalUrl" .) -}}
{{- if eq .Values.rbac.mode "namespaces" -}}
{{- $_ := set $options "manage_namespaces" false -}}
{{- end -}}
{{- $_ := set $service "backend_options" $options -}}
{{- $repositories := list -}}
{{- range $index, $repo := .Values.repositories -}}
{{- $entry := omit $repo "webhook_secret" "api_token" "ssh_key" "known_hosts" -}}
{{- if $repo.known_hosts -}}
{{- $_ := set $entry "known_hosts_file" (printf "/etc/bodywork/config/known-hosts-%d" $index) -}}
{{- end -}}
{{- range $refs -}}
{{- if and (hasKey . "repo") (eq (int .repo) $index) -}}
{{- $_ := set $entry (printf "%s_file" .field) .file -}}
{{- end -}}
{{- end -}}
{{- $repositories = append $repositories $entry -}}
{{- end -}}
{{- range $refs -}}
{{- if and (not (hasKey . "repo")) (not (hasKey . "slack")) -}}
{{- $_ := set $service (printf "%s_file" .field) .file -}}
{{- end -}}
{{- end -}}
{{- $config := dict "service" $service "repositories" $repositories -}}
{{- with .Values.pages -}}
{{- $_ := set $config "pages" (deepCopy .) -}}
{{- end -}}
{{- if .Values.slack.enabled -}}
{{- $slack := deepCopy .Values.slack.settings -}}
{{- range $key := list "channel" "command" "api_base" -}}
{{- with (get $.Values.slack $key) -}}
{{- $_ := set $slack $key . -}}
{{- end -}}
{{- end -}}
{{- range $refs -}}
{{- if hasKey . "slack" -}}
{{- $_ := set $slack (printf "%s_file" .field) .file -}}
{{- end -}}
{{- end -}}
{{- $_ := set $config "slack" $slack -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}
