#!/usr/bin/env bash
# Check the Helm chart in charts/portcullis without a cluster. Runs helm
# lint --strict and helm template with each value file in
# charts/portcullis/ci/. Every rendered object is validated against the
# Kubernetes 1.33 schemas with unknown fields rejected
# (kubernetes-validate --strict), and the output goes through yamllint.
# Several replicas with in-memory sessions or with SQLite must fail to
# render with the chart's message. The Sentinel and Cluster URL forms must
# reach the Secret unchanged, and a rediss:// URL, which portcullis cannot
# use, must fail the values schema. Each rendered configuration must pass
# `portcullis check-config`. The pod checksum must change with the
# configuration only, NOTES.txt must give the Okta values and warn of an
# ingress without trusted proxies, and the README's helm install command
# and sidecar snippet must render and validate. Chosen values of rendered
# objects are compared (the dashboard's NetworkPolicy, the ServiceAccount
# and the extension points), and value combinations that cannot work must
# fail to render with the chart's message.
# The portcullis binary is PORTCULLIS_BINARY, or target/debug/portcullis,
# built when missing.
# Prints one line per check and ends with "N passed, N failed"; exits 1
# when any check failed.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

bash scripts/chart-tools.sh

chart="charts/portcullis"
kube_version="1.33.0"
tools_dir="$repo_root/.run/tools"
helm="$tools_dir/bin/helm"
validate="$repo_root/.venv-k8s/bin/kubernetes-validate"
yamllint="$repo_root/.venv-k8s/bin/yamllint"
python="$repo_root/.venv-k8s/bin/python"
portcullis="${PORTCULLIS_BINARY:-${CARGO_TARGET_DIR:-target}/debug/portcullis}"
if [[ ! -x "$portcullis" ]]; then
  echo "check-chart: building $portcullis for check-config"
  cargo build --quiet --bin portcullis
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# With no kubeconfig, helm falls back to http://localhost:8080, which other
# local services may use. Point it at a closed port so nothing is reached.
printf '%s\n' 'apiVersion: v1' 'kind: Config' 'clusters:' '- name: offline' \
  '  cluster:' '    server: http://127.0.0.1:1' 'contexts:' '- name: offline' \
  '  context:' '    cluster: offline' 'current-context: offline' >"$work/kubeconfig"
export KUBECONFIG="$work/kubeconfig"
export HELM_CACHE_HOME="$tools_dir/helm/cache"
export HELM_CONFIG_HOME="$tools_dir/helm/config"
export HELM_DATA_HOME="$tools_dir/helm/data"

# Sequences written by Helm's toYaml are not indented under their key.
yamllint_config='{extends: relaxed, rules: {line-length: disable, indentation: {spaces: consistent, indent-sequences: whatever}}}'

passed=0
failed=0

pass() {
  echo "PASS $1"
  passed=$((passed + 1))
}

fail() {
  echo "FAIL $1"
  if [[ -n "${2:-}" ]]; then
    sed 's/^/    /' "$2" | head -n 20
  fi
  failed=$((failed + 1))
}

if "$helm" lint --strict "$chart" -f "$chart/ci/minimal-values.yaml" >"$work/lint.log" 2>&1; then
  pass "helm lint --strict"
else
  fail "helm lint --strict" "$work/lint.log"
fi

# Render each value file and validate the stream. Only the ServiceMonitor
# (a Prometheus Operator CRD) has no schema in kubernetes-validate, so a
# missing schema for any other kind is a failure.
for values in "$chart"/ci/*-values.yaml; do
  name="$(basename "$values" .yaml)"
  rendered="$work/$name.yaml"
  if ! "$helm" template portcullis "$chart" --namespace auth --kube-version "$kube_version" \
      -f "$values" >"$rendered" 2>"$work/$name.err"; then
    fail "helm template $name" "$work/$name.err"
    continue
  fi
  pass "helm template $name"

  "$validate" --strict -k "$kube_version" "$rendered" >"$work/$name.validate" 2>&1 && status=0 || status=$?
  missing="$(grep "Couldn't find schema" "$work/$name.validate" | grep -v "kind ServiceMonitor with api version monitoring.coreos.com/v1" || true)"
  if [[ "$status" -eq 0 && -z "$missing" ]]; then
    pass "kubernetes-validate $name"
  else
    fail "kubernetes-validate $name" "$work/$name.validate"
  fi

  if "$yamllint" -f parsable -d "$yamllint_config" "$rendered" >"$work/$name.yamllint" 2>&1 \
      && [[ ! -s "$work/$name.yamllint" ]]; then
    pass "yamllint $name"
  else
    fail "yamllint $name" "$work/$name.yamllint"
  fi

  if config="$("$python" scripts/chart_checks.py config "$rendered" "$work/$name-config" 2>"$work/$name.check")" \
      && "$portcullis" check-config --config "$config" >>"$work/$name.check" 2>&1; then
    pass "portcullis check-config $name"
  else
    fail "portcullis check-config $name" "$work/$name.check"
  fi
done

# expect_value NAME RENDERED KIND OBJECT PATH EXPECTED-JSON
# Checks one value of a rendered object (see `chart_checks.py query`).
expect_value() {
  local name="$1" rendered="$2" kind="$3" object="$4" path="$5" expected="$6" actual
  if [[ ! -s "$rendered" ]]; then
    fail "$name: $rendered was not rendered"
    return
  fi
  actual="$("$python" scripts/chart_checks.py query "$rendered" "$kind" "$object" "$path" 2>&1)" || true
  if [[ "$actual" == "$expected" ]]; then
    pass "$name"
  else
    printf '%s %s %s\nexpected %s\nfound    %s\n' "$kind" "$object" "$path" "$expected" "$actual" >"$work/value.err"
    fail "$name" "$work/value.err"
  fi
}

# The dashboard's NetworkPolicy sits in the dashboard's namespace and admits
# only this release's portcullis pods, from the release namespace.
expect_value "dashboard NetworkPolicy is in the dashboard's namespace" "$work/ha-postgres-values.yaml" \
  NetworkPolicy portcullis-dashboard metadata.namespace '"default"'
expect_value "dashboard NetworkPolicy selects the dashboard's pods" "$work/ha-postgres-values.yaml" \
  NetworkPolicy portcullis-dashboard spec.podSelector '{"matchLabels":{"app.kubernetes.io/name":"dashboard"}}'
expect_value "dashboard NetworkPolicy admits only portcullis pods" "$work/ha-postgres-values.yaml" \
  NetworkPolicy portcullis-dashboard spec.ingress \
  '[{"from":[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"auth"}},"podSelector":{"matchLabels":{"app.kubernetes.io/instance":"portcullis","app.kubernetes.io/name":"portcullis"}}}],"ports":[{"port":3000,"protocol":"TCP"}]}]'

# The extension points land where Kubernetes reads them, and the service
# account token stays unmounted.
extensions="$work/extensions-values.yaml"
pod_spec="spec.template.spec"
expect_value "default ServiceAccount is the chart's own" "$work/minimal-values.yaml" \
  Deployment portcullis "$pod_spec.serviceAccountName" '"portcullis"'
expect_value "service account token is not mounted" "$work/minimal-values.yaml" \
  Deployment portcullis "$pod_spec.automountServiceAccountToken" 'false'
expect_value "ServiceAccount does not automount its token" "$work/minimal-values.yaml" \
  ServiceAccount portcullis automountServiceAccountToken 'false'
expect_value "serviceAccount.name names the pods' account" "$extensions" \
  Deployment portcullis "$pod_spec.serviceAccountName" '"portcullis-oidc"'
expect_value "serviceAccount.annotations reach the ServiceAccount" "$extensions" \
  ServiceAccount portcullis-oidc metadata.annotations '{"eks.amazonaws.com/role-arn":"arn:aws:iam::111122223333:role/portcullis"}'
expect_value "extraEnv reaches the container" "$extensions" \
  Deployment portcullis "$pod_spec.containers.0.env.2" '{"name":"POD_NAME","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}'
expect_value "extraVolumes follow the chart's volumes" "$extensions" \
  Deployment portcullis "$pod_spec.volumes.4.name" '"scratch"'
expect_value "extraVolumeMounts follow the chart's mounts" "$extensions" \
  Deployment portcullis "$pod_spec.containers.0.volumeMounts.4" '{"mountPath":"/var/tmp","name":"scratch"}'
expect_value "topologySpreadConstraints reach the pod" "$extensions" \
  Deployment portcullis "$pod_spec.topologySpreadConstraints.0.topologyKey" '"topology.kubernetes.io/zone"'
expect_value "loadBalancerSourceRanges reach the Service" "$extensions" \
  Service portcullis spec.loadBalancerSourceRanges '["203.0.113.0/24","2001:db8::/32"]'

# The README's helm install command, rendered with its placeholders filled.
mapfile -t install_args < <("$python" scripts/chart_checks.py install-args README.md)
if "$helm" template portcullis "$chart" --kube-version "$kube_version" "${install_args[@]}" \
    >"$work/readme-install.yaml" 2>"$work/readme-install.err" \
    && "$validate" --strict -k "$kube_version" "$work/readme-install.yaml" >>"$work/readme-install.err" 2>&1; then
  pass "the README's helm install command renders"
else
  fail "the README's helm install command renders" "$work/readme-install.err"
fi

# The README's sidecar snippet in a Pod, and the names it mounts.
"$helm" template portcullis "$chart" --namespace auth --kube-version "$kube_version" \
  -f "$chart/ci/sidecar-values.yaml" >"$work/sidecar.yaml"
"$python" scripts/chart_checks.py sidecar-pod README.md "$work/sidecar-pod.yaml"
if "$validate" --strict -k "$kube_version" "$work/sidecar-pod.yaml" >"$work/sidecar-pod.validate" 2>&1 \
    && grep -qx "  name: portcullis" "$work/sidecar.yaml" \
    && grep -qF "configMap: {name: portcullis}" README.md \
    && grep -qF "secret: {secretName: portcullis}" README.md; then
  pass "the README's sidecar snippet validates and names the rendered objects"
else
  fail "the README's sidecar snippet validates and names the rendered objects" "$work/sidecar-pod.validate"
fi

# checksum/config must follow the ConfigMap: equal for equal values,
# different after a change of configuration.
checksum_of() {
  "$helm" template portcullis "$chart" --kube-version "$kube_version" \
    -f "$chart/ci/minimal-values.yaml" "$@" >"$work/checksum.yaml"
  "$python" scripts/chart_checks.py annotation "$work/checksum.yaml" checksum/config
}
first="$(checksum_of)"
again="$(checksum_of)"
changed="$(checksum_of --set config.log.level=debug)"
if [[ -n "$first" && "$first" == "$again" && "$first" != "$changed" ]]; then
  pass "checksum/config changes with the configuration only"
else
  echo "first $first, again $again, after a change $changed" >"$work/checksum.err"
  fail "checksum/config changes with the configuration only" "$work/checksum.err"
fi

# NOTES.txt is not rendered by helm template, so a copy of the chart wraps
# it in a ConfigMap.
notes_chart="$work/notes-chart"
cp -a "$chart" "$notes_chart"
{
  echo '{{- define "portcullis.notesCheck" -}}'
  cat "$chart/templates/NOTES.txt"
  echo '{{- end }}'
} >"$notes_chart/templates/_notes-check.tpl"
printf '%s\n' 'apiVersion: v1' 'kind: ConfigMap' 'metadata:' '  name: notes-check' 'data:' \
  '  notes: {{ include "portcullis.notesCheck" . | toJson }}' >"$notes_chart/templates/notes-check.yaml"

# expect_notes NAME VALUES-FILE EXPECTED-LINE...
# An EXPECTED-LINE starting with "!" must not appear.
expect_notes() {
  local name="$1" values="$2" line missing=""
  shift 2
  "$helm" template portcullis "$notes_chart" --namespace auth --kube-version "$kube_version" \
    -f "$values" --show-only templates/notes-check.yaml >"$work/notes.yaml"
  "$python" scripts/chart_checks.py notes "$work/notes.yaml" >"$work/notes.txt"
  for line in "$@"; do
    if [[ "$line" == '!'* ]]; then
      if grep -qF -- "${line#!}" "$work/notes.txt"; then
        missing+="unexpected: ${line#!}"$'\n'
      fi
    elif ! grep -qF -- "$line" "$work/notes.txt"; then
      missing+="missing: $line"$'\n'
    fi
  done
  if [[ -z "$missing" ]]; then
    pass "$name"
  else
    printf '%s' "$missing" >"$work/notes.err"
    cat "$work/notes.txt" >>"$work/notes.err"
    fail "$name" "$work/notes.err"
  fi
}

expect_notes "NOTES.txt gives the Okta values" "$chart/ci/minimal-values.yaml" \
  "https://dashboard.example.com/oauth2/callback" \
  "Add https://dashboard.example.com/ as a sign-out redirect URI" \
  "SCIM connector base URL:  https://dashboard.example.com/scim/v2" \
  "kubectl exec -n auth deploy/portcullis --" \
  "portcullis token create --config /etc/portcullis/portcullis.toml --name okta" \
  "the SQLite directory is on an emptyDir"
expect_notes "NOTES.txt in sidecar mode" "$chart/ci/sidecar-values.yaml" \
  "kubectl exec -n auth <dashboard pod> -c portcullis --" \
  "Sidecar mode: the chart created ConfigMap portcullis and Secret portcullis."
# Behind an ingress without trusted proxies, every client has the
# controller's address.
no_proxies_warning="WARNING: ingress.enabled is true but config.server.trustedProxies is empty."
cat "$chart/ci/minimal-values.yaml" - >"$work/ingress-no-proxies.yaml" <<'VALUES'
ingress:
  enabled: true
  hosts:
    - host: dashboard.example.com
      paths:
        - path: /
          pathType: Prefix
VALUES
expect_notes "NOTES.txt warns of an ingress without trusted proxies" "$work/ingress-no-proxies.yaml" \
  "$no_proxies_warning" "config.server.trustedProxies to the controller's pod network"
expect_notes "NOTES.txt is quiet when trusted proxies are set" "$chart/ci/ha-postgres-values.yaml" \
  "!$no_proxies_warning"

# expect_render_failure NAME MESSAGE-FRAGMENT HELM-ARGS...
expect_render_failure() {
  local name="$1" expected="$2"
  shift 2
  if "$helm" template portcullis "$chart" --kube-version "$kube_version" "$@" >/dev/null 2>"$work/reject.err"; then
    fail "$name: rendering succeeded, expected it to fail"
  elif grep -qF "$expected" "$work/reject.err"; then
    pass "$name"
  else
    fail "$name: failed without the expected message" "$work/reject.err"
  fi
}

expect_render_failure "reject 2 replicas with in-memory sessions" \
  "needs config.session.store: redis" \
  -f "$chart/ci/minimal-values.yaml" --set replicaCount=2
expect_render_failure "reject 2 replicas with SQLite" \
  "needs config.directory.backend: postgres" \
  -f "$chart/ci/minimal-values.yaml" --set replicaCount=2 \
  --set config.session.store=redis --set secret.redisUrl=redis://redis:6379
expect_render_failure "reject HPA with in-memory sessions" \
  "needs config.session.store: redis" \
  -f "$chart/ci/minimal-values.yaml" --set autoscaling.enabled=true
expect_render_failure "reject a rediss:// Redis URL" \
  "secret.redisUrl: Does not match pattern" \
  -f "$chart/ci/sentinel-values.yaml" --set secret.redisUrl=rediss://:pw@redis:6379

expect_render_failure "reject Kubernetes before 1.30" \
  "chart requires kubeVersion: >=1.30.0-0" \
  -f "$chart/ci/minimal-values.yaml" --kube-version 1.29.0
expect_render_failure "reject a misspelt log level" \
  "config.log.level: Does not match pattern" \
  -f "$chart/ci/minimal-values.yaml" --set config.log.level=inof
expect_render_failure "reject a misspelt level in a directive list" \
  "config.log.level: Does not match pattern" \
  -f "$chart/ci/minimal-values.yaml" --set config.log.level='portcullis=debug\,inf'
expect_render_failure "reject an unknown log format" \
  "config.log.format must be one of the following" \
  -f "$chart/ci/minimal-values.yaml" --set config.log.format=jsno
expect_render_failure "reject secret values beside existingSecret" \
  "secret.existingSecret (portcullis-credentials) and secret.clientSecret, secret.redisUrl are both set" \
  -f "$chart/ci/existing-secret-values.yaml" --set secret.clientSecret=example \
  --set secret.redisUrl=redis://redis:6379
expect_render_failure "reject a ServiceMonitor that the NetworkPolicy blocks" \
  "serviceMonitor.enabled with networkPolicy.enabled needs networkPolicy.adminFrom" \
  -f "$chart/ci/ha-postgres-values.yaml" --set-json 'networkPolicy.adminFrom=[]'
expect_render_failure "reject a PDB on one replica" \
  "podDisruptionBudget.minAvailable (1) must be below the replica count (1:" \
  -f "$chart/ci/minimal-values.yaml" --set podDisruptionBudget.enabled=true
expect_render_failure "reject a PDB percentage that keeps every replica" \
  "podDisruptionBudget.minAvailable (60%) must be below the replica count (2:" \
  -f "$chart/ci/sentinel-values.yaml" --set podDisruptionBudget.minAvailable=60%
expect_render_failure "reject a PDB above autoscaling.minReplicas" \
  "podDisruptionBudget.minAvailable (3) must be below the replica count (3:" \
  -f "$chart/ci/ha-postgres-values.yaml" --set podDisruptionBudget.minAvailable=3
expect_render_failure "reject loadBalancerSourceRanges on a ClusterIP" \
  "service.loadBalancerSourceRanges applies only to service.type LoadBalancer, not ClusterIP" \
  -f "$chart/ci/minimal-values.yaml" --set-json 'service.loadBalancerSourceRanges=["203.0.113.0/24"]'
expect_render_failure "reject an extra volume named like the chart's" \
  'extraVolumes: the name "tmp" is one of the chart' \
  -f "$chart/ci/minimal-values.yaml" --set-json 'extraVolumes=[{"name":"tmp","emptyDir":{}}]'
expect_render_failure "reject a dashboard NetworkPolicy without podSelector" \
  "dashboardNetworkPolicy.podSelector is required" \
  -f "$chart/ci/minimal-values.yaml" --set dashboardNetworkPolicy.enabled=true
expect_render_failure "reject a dashboard NetworkPolicy in sidecar mode" \
  "dashboardNetworkPolicy is not available with sidecar.enabled" \
  -f "$chart/ci/sidecar-values.yaml" --set dashboardNetworkPolicy.enabled=true \
  --set dashboardNetworkPolicy.podSelector.app=dashboard

# expect_secret_url NAME URL HELM-ARGS...
# Renders with the given values and checks that the Secret's redis-url key
# is URL exactly.
expect_secret_url() {
  local name="$1" url="$2"
  shift 2
  if ! "$helm" template portcullis "$chart" --kube-version "$kube_version" "$@" >"$work/url.yaml" 2>"$work/url.err"; then
    fail "$name: rendering failed" "$work/url.err"
  elif grep -qxF "  redis-url: \"$url\"" "$work/url.yaml"; then
    pass "$name"
  else
    grep -n "redis-url" "$work/url.yaml" >"$work/url.found" || true
    fail "$name: the Secret's redis-url differs" "$work/url.found"
  fi
}

sentinel_url="$(sed -n 's/^  redisUrl: //p' "$chart/ci/sentinel-values.yaml")"
expect_secret_url "Sentinel URL reaches the Secret" "$sentinel_url" \
  -f "$chart/ci/sentinel-values.yaml"
# --set would split the URL at its commas, so it goes in a value file.
cluster_url="redis+cluster://:pw@redis-cluster-0.redis-cluster.redis.svc:6379,redis-cluster-1.redis-cluster.redis.svc:6379"
printf 'secret:\n  redisUrl: %s\n' "$cluster_url" >"$work/cluster-url.yaml"
expect_secret_url "Cluster URL reaches the Secret" "$cluster_url" \
  -f "$chart/ci/ha-postgres-values.yaml" -f "$work/cluster-url.yaml"

echo "$passed passed, $failed failed"
[[ "$failed" -eq 0 ]]
