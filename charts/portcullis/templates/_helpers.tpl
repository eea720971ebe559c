{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "portcullis.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name of every object: the release name, plus the chart name unless the release already contains it. */}}
{{- define "portcullis.fullname" -}}
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

{{- define "portcullis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "portcullis.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "portcullis.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "portcullis.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "portcullis.secretName" -}}
{{- default (include "portcullis.fullname" .) .Values.secret.existingSecret }}
{{- end }}

{{/* The pods' ServiceAccount: the chart's own, or the one named, or the namespace's default. */}}
{{- define "portcullis.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "portcullis.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Directory where the Secret's keys appear as files. */}}
{{- define "portcullis.secretDir" -}}
/var/run/secrets/portcullis
{{- end }}

{{/* Default terminationGracePeriodSeconds: portcullis's grace period and shutdown timeout, the preStop sleep, and 10 s of margin. */}}
{{- define "portcullis.terminationGracePeriod" -}}
{{- $server := .Values.config.server }}
{{- $minimum := add $server.gracePeriodSeconds $server.shutdownTimeoutSeconds .Values.preStopSleepSeconds }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add $minimum 10 }}
{{- else if le (int .Values.terminationGracePeriodSeconds) (int $minimum) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be larger than config.server.gracePeriodSeconds + shutdownTimeoutSeconds + preStopSleepSeconds (%v), or the kubelet kills portcullis before in-flight requests finish" .Values.terminationGracePeriodSeconds $minimum) }}
{{- else }}
{{- .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/*
Reject value combinations that render but cannot work. Sessions in memory
and a SQLite file are private to one process, so several replicas would
sign users out at random and split the directory.
*/}}
{{- define "portcullis.validate" -}}
{{- $v := .Values }}
{{- $_ := required "publicUrl is required: the URL browsers use to reach portcullis, such as https://dashboard.example.com" $v.publicUrl }}
{{- $_ = required "config.upstream.url is required: the dashboard's Service, such as http://dashboard.default.svc:3000 (http://127.0.0.1:<port> in sidecar mode)" $v.config.upstream.url }}
{{- $_ = required "config.oidc.issuer is required, such as https://<org>.okta.com" $v.config.oidc.issuer }}
{{- $_ = required "config.oidc.clientId is required: the client id of the app integration" $v.config.oidc.clientId }}
{{- if not (has $v.config.session.store (list "memory" "redis")) }}
{{- fail (printf "config.session.store must be \"memory\" or \"redis\", not %q" $v.config.session.store) }}
{{- end }}
{{- if not (has $v.config.directory.backend (list "sqlite" "postgres")) }}
{{- fail (printf "config.directory.backend must be \"sqlite\" or \"postgres\", not %q" $v.config.directory.backend) }}
{{- end }}
{{- if and (not $v.sidecar.enabled) (or (gt (int $v.replicaCount) 1) $v.autoscaling.enabled) }}
{{- if eq $v.config.session.store "memory" }}
{{- fail "replicaCount > 1 or autoscaling.enabled needs config.session.store: redis, because in-memory sessions are private to one pod. Set config.session.store=redis and secret.redisUrl (or the redis-url key of secret.existingSecret), or run one replica." }}
{{- end }}
{{- if eq $v.config.directory.backend "sqlite" }}
{{- fail "replicaCount > 1 or autoscaling.enabled needs config.directory.backend: postgres, because a SQLite directory belongs to one pod. Set config.directory.backend=postgres and secret.databaseUrl (or the database-url key of secret.existingSecret), or run one replica." }}
{{- end }}
{{- end }}
{{- include "portcullis.validateSecret" . }}
{{- include "portcullis.validateKubernetes" . }}
{{- if not $v.secret.existingSecret }}
{{- $_ = required "secret.clientSecret is required (or name a Secret with key client-secret in secret.existingSecret)" $v.secret.clientSecret }}
{{- if not $v.secret.cookieKeys }}
{{- fail "secret.cookieKeys needs at least one key of 32 or more characters (or name a Secret with key cookie-keys in secret.existingSecret); generate one with: openssl rand -base64 48" }}
{{- end }}
{{- range $v.secret.cookieKeys }}
{{- if lt (len .) 32 }}
{{- fail "every entry of secret.cookieKeys must be at least 32 characters long; generate one with: openssl rand -base64 48" }}
{{- end }}
{{- end }}
{{- if eq $v.config.session.store "redis" }}
{{- $_ = required "secret.redisUrl is required when config.session.store is redis, such as redis://:PASSWORD@redis-master:6379/0, redis+sentinel://:PASSWORD@redis-sentinel:26379/mymaster or redis+cluster://:PASSWORD@redis-cluster-0:6379,redis-cluster-1:6379" $v.secret.redisUrl }}
{{- end }}
{{- if eq $v.config.directory.backend "postgres" }}
{{- $_ = required "secret.databaseUrl is required when config.directory.backend is postgres, such as postgres://portcullis:PASSWORD@postgres:5432/portcullis" $v.secret.databaseUrl }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Reject secret values given beside secret.existingSecret: the chart would
not render them, and the pods would read the existing Secret instead.
*/}}
{{- define "portcullis.validateSecret" -}}
{{- $secret := .Values.secret }}
{{- if $secret.existingSecret }}
{{- $given := list }}
{{- range $key := list "clientSecret" "cookieKeys" "redisUrl" "databaseUrl" }}
{{- if index $secret $key }}
{{- $given = append $given (printf "secret.%s" $key) }}
{{- end }}
{{- end }}
{{- if $given }}
{{- fail (printf "secret.existingSecret (%s) and %s are both set, but the chart would ignore %s. Put those values in the existing Secret and remove them here, or remove secret.existingSecret so the chart creates the Secret." $secret.existingSecret (join ", " $given) (join ", " $given)) }}
{{- end }}
{{- end }}
{{- end }}

{{/* Reject Kubernetes objects that would render but not do their job. */}}
{{- define "portcullis.validateKubernetes" -}}
{{- $v := .Values }}
{{- if and (not $v.sidecar.enabled) $v.serviceMonitor.enabled $v.networkPolicy.enabled (not $v.networkPolicy.adminFrom) }}
{{- fail "serviceMonitor.enabled with networkPolicy.enabled needs networkPolicy.adminFrom: an empty adminFrom admits no peer to the admin port, so Prometheus could not scrape /metrics. Add Prometheus's pods, such as a namespaceSelector for the monitoring namespace." }}
{{- end }}
{{- if and (not $v.sidecar.enabled) $v.podDisruptionBudget.enabled }}
{{- $replicas := int (ternary $v.autoscaling.minReplicas $v.replicaCount $v.autoscaling.enabled) }}
{{- $minAvailable := toString $v.podDisruptionBudget.minAvailable }}
{{- $required := atoi $minAvailable }}
{{- if hasSuffix "%" $minAvailable }}
{{- /* The eviction API rounds a percentage up. */}}
{{- $required = div (add (mul (atoi (trimSuffix "%" $minAvailable)) $replicas) 99) 100 }}
{{- end }}
{{- if ge (int $required) $replicas }}
{{- fail (printf "podDisruptionBudget.minAvailable (%s) must be below the replica count (%d: replicaCount, or autoscaling.minReplicas with autoscaling), because otherwise no pod can be evicted and node drains block. Run at least 2 replicas with minAvailable 1, or set podDisruptionBudget.enabled=false." $minAvailable $replicas) }}
{{- end }}
{{- end }}
{{- if and $v.service.loadBalancerSourceRanges (ne $v.service.type "LoadBalancer") }}
{{- fail (printf "service.loadBalancerSourceRanges applies only to service.type LoadBalancer, not %s; remove it or set service.type=LoadBalancer" $v.service.type) }}
{{- end }}
{{- range $v.extraVolumes }}
{{- if has .name (list "config" "secrets" "data" "tmp" "provider-ca") }}
{{- fail (printf "extraVolumes: the name %q is one of the chart's own volumes (config, secrets, data, tmp, provider-ca); choose another" .name) }}
{{- end }}
{{- end }}
{{- $policy := $v.dashboardNetworkPolicy }}
{{- if $policy.enabled }}
{{- if $v.sidecar.enabled }}
{{- fail "dashboardNetworkPolicy is not available with sidecar.enabled: portcullis and the dashboard share one pod, so a NetworkPolicy cannot tell them apart. Bind the dashboard to 127.0.0.1, or restrict its port with a NetworkPolicy of your own (see the README's \"Sidecar mode\")." }}
{{- end }}
{{- if not $policy.podSelector }}
{{- fail "dashboardNetworkPolicy.podSelector is required when dashboardNetworkPolicy.enabled: the labels of the dashboard's pods, such as {app.kubernetes.io/name: grafana}" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The Secret's keys that this configuration reads. */}}
{{- define "portcullis.secretKeys" -}}
{{- $keys := list "client-secret" "cookie-keys" }}
{{- if eq .Values.config.session.store "redis" }}{{ $keys = append $keys "redis-url" }}{{ end }}
{{- if eq .Values.config.directory.backend "postgres" }}{{ $keys = append $keys "database-url" }}{{ end }}
{{- join "," $keys }}
{{- end }}
