# The cxrelay image: one binary for every role (`cxrelay worker`, `cxrelay serve`, `cxrelay sim`
# and the on-call commands), on Debian slim, as a non-root user. Build it with `scripts/image`
# (podman or docker); `make check-deploy` lints this file without a container engine.
#
# Both bases are pinned to a release tag (for reproducible builds pin them by digest as well:
# `FROM rust:1.95.0-slim-bookworm@sha256:…` once your registry mirror has them).

# --- build -------------------------------------------------------------------------------------
FROM rust:1.95.0-slim-bookworm AS builder
WORKDIR /src
# Only what the build needs (.dockerignore keeps the rest out of the context): the workspace
# manifests, the lock file and the crates' sources.
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
# The registry and target directories are cache mounts (kept between builds, not in a layer), so
# the binary is copied out of target/ in the same step. The release profile is stripped.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin cxrelay \
    && install -D -m 0755 target/release/cxrelay /out/cxrelay

# --- runtime -----------------------------------------------------------------------------------
FROM debian:12.11-slim
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="cxrelay" \
      org.opencontainers.image.description="Durable, rate-limited job-queue worker for contact-center API calls" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/debian:12.11-slim"

# ca-certificates only: the target API, the token endpoint and rediss:// are TLS (rustls reads
# the system roots). Versions are not pinned: the base tag pins the Debian point release, and
# Debian replaces a package version when it ships a security fix.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 cxrelay \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin cxrelay

COPY --from=builder /out/cxrelay /usr/local/bin/cxrelay

# In a container `cxrelay serve` listens on every interface (its default is 127.0.0.1:8080);
# workers serve /metrics, /healthz and /readyz with `--metrics-addr 0.0.0.0:9090`.
ENV CXRELAY_SERVE_ADDR=0.0.0.0:8080
USER 10001:10001
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/cxrelay"]
CMD ["worker"]
