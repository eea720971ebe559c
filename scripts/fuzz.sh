#!/usr/bin/env bash
# Run the coverage-guided fuzz targets in fuzz/ with cargo-fuzz (libFuzzer)
# on the default stable toolchain, SECONDS each (default 30):
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Installs cargo-fuzz, and g++ for libFuzzer's C++ sources, when missing.
# Builds without a sanitizer (`-s none`), since AddressSanitizer needs a
# nightly compiler and the code under test forbids unsafe code, but with
# debug assertions and overflow checks. Each target starts from its seeds in
# fuzz/seeds/ and the corpus in fuzz/corpus/ that earlier runs grew (not
# tracked by git). Prints one line per target with its executions, coverage
# and corpus, and ends with "N passed, N failed". A crash, panic, timeout or
# out-of-memory input fails the run, and its reproducer path is printed.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
# shellcheck source=scripts/apt-packages.sh
source scripts/apt-packages.sh

readonly CARGO_FUZZ_VERSION=0.13.2
# Maximum time one input may take, in seconds, before libFuzzer reports it.
readonly INPUT_TIMEOUT_SECONDS=10
seconds="${1:-30}"
shift || true
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  echo "fuzz: SECONDS must be a positive whole number, got '$seconds'" >&2
  exit 2
fi

install_tools() {
  install_missing_packages fuzz "c++ g++"
  if [ "$(cargo fuzz --version 2>/dev/null || true)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
    echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install --quiet --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
  fi
}

# Prints the statistics of libFuzzer's last status line in LOG.
summarise() {
  local target="$1" log="$2" line
  line="$(grep -E '^#[0-9]+[[:space:]]+(DONE|INITED|NEW|REDUCE|pulse)' "$log" | tail -n 1 || true)"
  echo "fuzz: $target: ${line:-no status line in $log}"
}

# Prints the path of each input that libFuzzer saved for a failure in LOG.
print_reproducers() {
  local target="$1" log="$2" path
  sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | while read -r path; do
    echo "fuzz: $target: reproducer $path"
    echo "fuzz:   replay it with: cargo fuzz run -s none $target $path"
  done
}

install_tools
mapfile -t all_targets < <(cargo fuzz list)
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  targets=("${all_targets[@]}")
fi

log_dir="$repo_root/.run/fuzz"
mkdir -p "$log_dir"
# A first build compiles every dependency with coverage instrumentation,
# which takes several minutes on 2 cores.
echo "fuzz: building the fuzz targets, log in $log_dir/build.log"
if ! cargo fuzz build -s none >"$log_dir/build.log" 2>&1; then
  tail -n 30 "$log_dir/build.log" >&2
  echo "fuzz: the build failed" >&2
  exit 1
fi

passed=0
failed=0
for target in "${targets[@]}"; do
  corpus="fuzz/corpus/$target"
  mkdir -p "$corpus" "fuzz/artifacts/$target"
  options=(-max_total_time="$seconds" -timeout="$INPUT_TIMEOUT_SECONDS")
  if [ -f "fuzz/dictionaries/$target.dict" ]; then
    options+=(-dict="fuzz/dictionaries/$target.dict")
  fi
  log="$log_dir/$target.log"
  echo "fuzz: running $target for ${seconds}s, log in $log"
  if cargo fuzz run -s none "$target" "$corpus" "fuzz/seeds/$target" -- "${options[@]}" >"$log" 2>&1; then
    summarise "$target" "$log"
    passed=$((passed + 1))
  else
    echo "FAIL fuzz target $target"
    grep -E "panicked at|ERROR: libFuzzer|SUMMARY" "$log" | head -n 5 | sed 's/^/    /'
    print_reproducers "$target" "$log"
    failed=$((failed + 1))
  fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
