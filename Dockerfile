# syntax=docker/dockerfile:1
# berth: one multi-stage build, one target per binary.
#   docker build --target csi     -t berth-csi:dev .
#   docker build --target ingress -t berth-ingress:dev .
# Bases are pinned (Debian 12 "bookworm" point release; Rust toolchain release).

ARG DEBIAN=debian:bookworm-20251117-slim
ARG RUST=rust:1.91.1-slim-bookworm

# ---- builder: the Rust toolchain and the Ceph headers the FFI follows (librbd, librados are loaded at run time) ----
FROM ${RUST} AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends librbd-dev librados-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY proto proto
COPY common common
COPY conformance conformance
COPY csi-driver csi-driver
COPY ingress ingress
COPY tests tests
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,id=berth-target \
    cargo build --release --locked -p berth-csi -p berth-ingress --bins \
 && mkdir -p /out \
 && cp target/release/berth-csi target/release/berth-ingress /out/

# ---- csi: berth-csi and what it runs (attachers, filesystems); no build tools ----
FROM ${DEBIAN} AS csi
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      librbd1 librados2 ceph-common rbd-nbd rbd-fuse fuse3 \
      e2fsprogs xfsprogs util-linux mount kmod ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=builder /out/berth-csi /usr/local/bin/berth-csi
ENTRYPOINT ["/usr/local/bin/berth-csi"]

# ---- ingress: berth-ingress + nginx, unprivileged (uid 101, ports 8080/8443) ----
FROM ${DEBIAN} AS ingress
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 101 berth \
 && useradd --system --uid 101 --gid 101 --no-create-home --shell /usr/sbin/nologin berth \
 && mkdir -p /var/lib/berth-ingress && chown 101:101 /var/lib/berth-ingress
COPY --from=builder /out/berth-ingress /usr/local/bin/berth-ingress
USER 101:101
EXPOSE 8080 8443 10254
ENTRYPOINT ["/usr/local/bin/berth-ingress"]
CMD ["run"]
