#!/usr/bin/env bash
# Build the container image from the Dockerfile, then sign in through a
# container of it.
#
# The test machines run no Docker engine and cannot reach Docker Hub. So
# podman builds the image, and the Dockerfile's two base images are
# stand-ins made here, passed as BUILD_IMAGE and RUNTIME_IMAGE:
#   runtime  Debian 12 from debootstrap's minbase variant, in place of
#            debian:bookworm-slim.
#   build    The runtime stand-in plus gcc, g++, make and this machine's
#            Rust toolchain, in place of rust:1.95-bookworm, with cargo and
#            rustc in /usr/local/cargo/bin as in the official image. It
#            also trusts the CA certificates in
#            /usr/local/share/ca-certificates, because these machines reach
#            crates.io through a proxy whose certificates they sign.
# The stand-ins stay in podman's storage and are reused by later runs.
#
# The check then runs scripts/quickstart.sh --check with the container as
# the portcullis binary: the image's own user, a read-only root file system,
# a volume on /var/lib/portcullis as the chart mounts one, and the host's
# network, so it reaches the provider and the dashboard on loopback.
# Prints one line per check and ends with "N passed, N failed".
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
# shellcheck source=scripts/apt-packages.sh
source scripts/apt-packages.sh

readonly IMAGE="localhost/portcullis:check"
readonly STANDIN_PREFIX="localhost/portcullis-standin"
readonly IMAGE_USER="10001:10001"
work_dir="$repo_root/.run/image"
container_name="portcullis-image-check-$$"
passed=0
failed=0

# podman's defaults fail on these machines in two ways. crun rejects their
# cgroup v1 hierarchy, and podman's default open-file limit for a container
# is above this process's hard limit, which cannot be raised here. So
# containers run with runc, with at most the limits this process has.
write_podman_config() {
  local open_files
  open_files="$(ulimit -Hn)"
  if [ "$open_files" = unlimited ]; then
    open_files=1048576
  fi
  cat >"$work_dir/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$open_files:$open_files", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
EOF
  export CONTAINERS_CONF="$work_dir/containers.conf"
}

record() {
  local outcome="$1" description="$2"
  echo "$outcome: $description"
  if [ "$outcome" = ok ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
  fi
}

make_runtime_standin() {
  local tag="$1" rootfs="$work_dir/rootfs"
  if podman image exists "$tag"; then
    return
  fi
  echo "check-image: making $tag with debootstrap"
  rm -rf "$rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$work_dir/debootstrap.log" 2>&1 \
    || { tail -n 20 "$work_dir/debootstrap.log" >&2; exit 1; }
  tar -C "$rootfs" -c . | podman import --quiet - "$tag" >/dev/null
  rm -rf "$rootfs"
}

# Leaves out the toolchain's documentation (share/), most of its size.
make_build_standin() {
  local tag="$1" runtime_tag="$2" context="$work_dir/build-standin" sysroot
  if podman image exists "$tag"; then
    return
  fi
  echo "check-image: making $tag from this machine's Rust toolchain"
  sysroot="$(rustc --print sysroot)"
  rm -rf "$context"
  mkdir -p "$context/toolchain"
  cp -a "$sysroot/bin" "$sysroot/lib" "$context/toolchain/"
  if [ -d "$sysroot/libexec" ]; then
    cp -a "$sysroot/libexec" "$context/toolchain/"
  fi
  mkdir -p "$context/local-ca"
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$context/local-ca/"
  fi
  cat >"$context/Containerfile" <<EOF
FROM $runtime_tag
RUN apt-get update \\
    && apt-get install -y --no-install-recommends ca-certificates gcc g++ libc6-dev make pkg-config \\
    && rm -rf /var/lib/apt/lists/*
COPY local-ca /usr/local/share/ca-certificates
RUN update-ca-certificates
COPY toolchain /usr/local/rustup/toolchains/stable
RUN mkdir -p /usr/local/cargo/bin \\
    && for tool in cargo rustc rustdoc; do ln -s /usr/local/rustup/toolchains/stable/bin/\$tool /usr/local/cargo/bin/\$tool; done
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
EOF
  podman build --quiet --pull=never --network host -t "$tag" "$context" >"$work_dir/build-standin.log" 2>&1 \
    || { tail -n 20 "$work_dir/build-standin.log" >&2; exit 1; }
  rm -rf "$context"
}

build_image() {
  local build_tag="$1" runtime_tag="$2"
  echo "check-image: building $IMAGE from the Dockerfile (log: .run/image/build.log)"
  if podman build --pull=never --network host \
    --build-arg BUILD_IMAGE="$build_tag" --build-arg RUNTIME_IMAGE="$runtime_tag" \
    -t "$IMAGE" . >"$work_dir/build.log" 2>&1; then
    record ok "the Dockerfile builds"
  else
    tail -n 30 "$work_dir/build.log" >&2
    record FAIL "the Dockerfile builds"
    return 1
  fi
}

check_image_user() {
  local configured actual
  configured="$(podman image inspect --format '{{.Config.User}}' "$IMAGE")"
  actual="$(podman run --rm --read-only --entrypoint id "$IMAGE" -u 2>&1)" || true
  if [ "$configured" = "$IMAGE_USER" ] && [ "$actual" = "${IMAGE_USER%%:*}" ]; then
    record ok "the image runs as $IMAGE_USER"
  else
    record FAIL "the image runs as $IMAGE_USER (configured '$configured', id -u printed '$actual')"
  fi
}

# Writes a script that quickstart.sh runs in place of the binary. It passes
# on the arguments and the PORTCULLIS_* variables, and moves the SQLite
# file from the repository to the volume.
write_container_wrapper() {
  cat >"$work_dir/portcullis-in-container" <<EOF
#!/bin/sh
exec podman run --rm --name $container_name --network host --read-only \\
  --tmpfs /tmp --volume /var/lib/portcullis \\
  --volume "$repo_root/config:/etc/portcullis/config:ro" --workdir /etc/portcullis \\
  --env 'PORTCULLIS_*' \\
  --env PORTCULLIS_DIRECTORY__URL=sqlite:///var/lib/portcullis/portcullis.db \\
  "$IMAGE" "\$@"
EOF
  chmod +x "$work_dir/portcullis-in-container"
}

check_login_through_container() {
  write_container_wrapper
  if PORTCULLIS_BINARY="$work_dir/portcullis-in-container" bash scripts/quickstart.sh --check; then
    record ok "a sign-in through the container reaches the dashboard"
  else
    record FAIL "a sign-in through the container reaches the dashboard (logs in .run/quickstart-check/)"
  fi
}

remove_container() {
  podman rm --force --ignore "$container_name" >/dev/null 2>&1 || true
}

main() {
  local runtime_tag="$STANDIN_PREFIX/debian:bookworm-minbase" build_tag rust_version
  mkdir -p "$work_dir"
  # Containers run with runc (see write_podman_config).
  install_missing_packages check-image "podman podman" "runc runc" "debootstrap debootstrap"
  write_podman_config
  trap remove_container EXIT

  rust_version="$(rustc --version | awk '{print $2}')"
  build_tag="$STANDIN_PREFIX/rust:$rust_version-bookworm"
  make_runtime_standin "$runtime_tag"
  make_build_standin "$build_tag" "$runtime_tag"

  if build_image "$build_tag" "$runtime_tag"; then
    check_image_user
    check_login_through_container
  fi

  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}

main "$@"
