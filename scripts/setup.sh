#!/usr/bin/env bash
# Prepare a Debian 12 machine to build and test portcullis.
#
# Expects the Rust toolchain, Node.js 20 with npm, Python 3.11 or later, and
# root for apt-get. Installs with apt only the missing build and test tools
# (cmake, redis-server, and redis-cli, which the Redis Cluster tests use to
# create a cluster; Debian ships it in redis-tools). The TLS tests need
# openssl to make a throwaway CA, so it is installed too when missing.
# Runs `npm ci` in tests/fixtures when node_modules is
# missing or older than package-lock.json, and creates the Python virtualenv
# .venv with the SCIM conformance checker when it is missing. Prints nothing
# when everything is already in place.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/apt-packages.sh
source "$repo_root/scripts/apt-packages.sh"
fixtures_dir="$repo_root/tests/fixtures"

# Command name, then the Debian package that provides it.
apt_requirements=(
  "cmake cmake"
  "redis-server redis-server"
  "redis-cli redis-tools"
  "openssl openssl"
)

require_command() {
  local name="$1" hint="$2"
  if ! command -v "$name" >/dev/null 2>&1; then
    echo "setup: $name not found. $hint." >&2
    exit 1
  fi
}

# npm rewrites node_modules/.package-lock.json on every install, so a copy
# older than package-lock.json means the installed tree is out of date.
install_fixture_packages() {
  local installed_lock="$fixtures_dir/node_modules/.package-lock.json"
  if [ -f "$installed_lock" ] && [ ! "$fixtures_dir/package-lock.json" -nt "$installed_lock" ]; then
    return
  fi
  echo "setup: running npm ci in tests/fixtures"
  (cd "$fixtures_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  echo "setup: installed the npm packages of tests/fixtures"
}

# scim2-cli runs the scim2-tester checks in the end-to-end tests. Both need
# Python 3.11 or later. The versions are pinned, so the number of checks a
# passing run prints stays the same.
install_scim_checker() {
  local venv="$repo_root/.venv"
  if [ -x "$venv/bin/scim2" ]; then
    return
  fi
  echo "setup: creating the Python virtualenv .venv with scim2-cli and scim2-tester"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet scim2-cli==0.6.0 scim2-tester==0.5.2
  echo "setup: installed scim2-cli in .venv"
}

require_command cargo "Install the Rust toolchain with rustup"
require_command node "Install Node.js 20 or later"
require_command npm "Install npm together with Node.js"
require_command python3 "Install Python 3.11 or later (apt-get install python3 python3-venv)"
install_missing_packages setup "${apt_requirements[@]}"
install_fixture_packages
install_scim_checker
