#!/usr/bin/env bash
# Benchmark portcullis against the upstream alone, nginx as a plain reverse
# proxy and Apache httpd with mod_auth_openidc, all on loopback in one run.
#
# Installs what is missing (wrk, nginx, Apache httpd with mod_auth_openidc,
# redis-server and the test provider's npm packages), builds the release
# binary, the directory seeder and a bare Pingora proxy (examples/), then
# runs bench/run.py, which starts the servers, measures, stops them and
# writes bench/results/ (a full run also rewrites the generated part of
# BENCHMARKS.md). Options go to bench/run.py:
#   scripts/bench.sh            full run, about 21 minutes on 2 cores
#   scripts/bench.sh --quick    smoke run, about 3 minutes
#   scripts/bench.sh --help     every option
# Needs root for apt-get, and PostgreSQL at 127.0.0.1:5432 that accepts
# user postgres without a password and has a database named test (or
# BENCH_DATABASE_URL naming another); the run creates a schema there and
# drops it at the end.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
# shellcheck source=scripts/apt-packages.sh
source scripts/apt-packages.sh

# Command name (or file), then the Debian package that provides it.
apt_requirements=(
  "wrk wrk"
  "nginx nginx"
  "apache2 apache2"
  "redis-server redis-server"
  "psql postgresql-client"
  "/usr/lib/apache2/modules/mod_auth_openidc.so libapache2-mod-auth-openidc"
)

for argument in "$@"; do
  case "$argument" in
    -h | --help) exec python3 bench/run.py --help ;;
  esac
done

install_missing_packages bench "${apt_requirements[@]}"
# Debian ships apache2 and nginx in /usr/sbin, which a non-login root shell
# may not have on its PATH.
export PATH="$PATH:/usr/sbin"
bash scripts/setup.sh
echo "bench: building the release binary and the benchmark's examples"
cargo build --release --bin portcullis --example bench_seed --example bench_passthrough
exec python3 bench/run.py "$@"
