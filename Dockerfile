# Build the portcullis image that charts/portcullis runs:
#   docker build -t portcullis:0.1.0 .
# Stage 1 compiles a release binary; stage 2 is a slim Debian with only the
# binary, CA certificates and a non-root user. portcullis trusts the system
# store in /etc/ssl/certs, besides its built-in webpki roots, for the OpenID
# provider's HTTPS and for PostgreSQL URLs with sslmode=verify-ca or
# verify-full.

# Cargo.toml requires Rust 1.85 or later; 1.95 is the toolchain the test
# suite runs with. scripts/check-image.sh builds from stand-ins for both
# base images that it makes locally, because the test machines cannot pull
# from Docker Hub.
ARG BUILD_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${BUILD_IMAGE} AS builder
# Pingora's build needs cmake.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY Cargo.toml Cargo.lock ./
# The dependencies first, against empty sources, so that a change to
# portcullis's own code rebuilds only the last layer.
RUN mkdir src \
    && echo 'fn main() {}' >src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked --bin portcullis \
    && rm -rf src
COPY src ./src
# COPY keeps the files' modification times, which can be older than the
# build of the empty sources, so cargo would take them as built.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin portcullis \
    && install -m 0755 target/release/portcullis /portcullis

FROM ${RUNTIME_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# A fixed UID and GID, so runAsUser and fsGroup in the chart match the image.
RUN groupadd --system --gid 10001 portcullis \
    && useradd --system --uid 10001 --gid portcullis --home-dir /var/lib/portcullis \
       --no-create-home --shell /usr/sbin/nologin portcullis \
    && install -d -o portcullis -g portcullis -m 0750 /var/lib/portcullis /etc/portcullis
COPY --from=builder /portcullis /usr/local/bin/portcullis
USER 10001:10001
WORKDIR /var/lib/portcullis
EXPOSE 8080 9090
ENTRYPOINT ["portcullis"]
CMD ["serve", "--config", "/etc/portcullis/portcullis.toml"]
