#!/usr/bin/env bash
# Run every check and test of portcullis: rustfmt, clippy with warnings as
# errors, then `cargo test --all-targets`, which also runs the end-to-end tests
# under tests/. Those start their own redis-server, OpenID provider and
# upstream on free ports. Then each fuzz target in fuzz/ runs for 10 seconds,
# the Helm chart is checked, the quick start signs in, and the container
# image is built from the Dockerfile and signed in through.
# NOTE: `--all-targets` does not run doctests.
#
# Extra arguments go to `cargo test`, for example:
#   scripts/test.sh --test e2e -- --nocapture
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

bash scripts/setup.sh

echo "test: cargo fmt --check"
cargo fmt --check

echo "test: cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

echo "test: cargo test --all-targets $*"
cargo test --all-targets "$@"

# The 100,000-user tests load both cores for minutes; run alone, they do not
# slow the start-up of the other end-to-end tests' fixtures.
echo "test: cargo test --test e2e -- --ignored (scale tests)"
cargo test --test e2e -- --ignored --test-threads=1

# Coverage-guided fuzzing, 10 seconds per target. The first run builds
# the instrumented targets, which takes several minutes.
echo "test: scripts/fuzz.sh 10"
bash scripts/fuzz.sh 10

# The Helm chart, rendered and validated offline; no cluster is contacted.
echo "test: scripts/check-chart.sh"
bash scripts/check-chart.sh

# The README's quick start, on the binary the end-to-end tests just built.
# A plain `cargo build` would compile another variant, because the
# dev-dependencies enable more features of shared crates.
echo "test: scripts/quickstart.sh --check"
PORTCULLIS_BINARY="${CARGO_TARGET_DIR:-target}/debug/portcullis" bash scripts/quickstart.sh --check

# The Dockerfile, built with podman on stand-ins for its base images, and
# the same sign-in through a container of the image. The first run builds
# release binaries inside the image, which takes several minutes.
echo "test: scripts/check-image.sh"
bash scripts/check-image.sh
