# fastupload: the service (upload-http) and the benchmark client (bench-client) in one image.
#
#   docker build -t fastupload .                       # from source, in the official Rust image
#   cargo build --release --locked -p upload-http -p bench-client
#   docker build --target prebuilt -t fastupload .     # from binaries built on a Debian 12 host
#
# The classic builder builds every stage up to its target, so the stages that need neither
# the Rust image nor the sources (runtime-base, garage-init, nginx, prebuilt) come first.

ARG DEBIAN_IMAGE=debian:bookworm-slim
ARG RUST_IMAGE=rust:1.95-slim-bookworm

# --- what every fastupload image holds: CA roots (S3 over TLS), a non-root user, /data ---
FROM ${DEBIAN_IMAGE} AS runtime-base
RUN set -eu; \
    if [ ! -e /etc/ssl/certs/ca-certificates.crt ]; then \
      apt-get update; \
      apt-get install -y --no-install-recommends ca-certificates; \
      rm -rf /var/lib/apt/lists/*; \
    fi; \
    useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin fastupload; \
    mkdir /data; \
    chown fastupload:fastupload /data
# The default storage root is ./data: from /, the volume. (Set no storage key here, so that
# UPLOAD__STORAGE__TYPE=s3 needs nothing unset.)
WORKDIR /
VOLUME /data
ENV UPLOAD__SERVER__HOST=0.0.0.0 UPLOAD__SERVER__PORT=8000 RUST_LOG=info
USER fastupload
EXPOSE 8000
# Ready means the storage is usable; the binary is its own probe.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["upload-http", "healthcheck"]
# SIGTERM (docker stop) lets in-flight requests finish for server.shutdown_timeout.
STOPSIGNAL SIGTERM
CMD ["upload-http"]

# --- one-shot setup of the demo's Garage node: the garage CLI and a POSIX shell ---
FROM ${DEBIAN_IMAGE} AS garage-init
COPY --from=dxflrs/garage:v2.5.0 /garage /usr/local/bin/garage
COPY deploy/garage-init.sh /usr/local/bin/garage-init
CMD ["garage-init"]

# --- the load balancer of docker-compose.cluster.yml: Debian's nginx and deploy/nginx.conf ---
FROM ${DEBIAN_IMAGE} AS nginx
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx-light \
 && rm -rf /var/lib/apt/lists/*
COPY deploy/nginx.conf /etc/nginx/nginx.conf
EXPOSE 8080
CMD ["nginx", "-g", "daemon off;"]

# --- the runtime from binaries built on the host (`--target prebuilt`) ---
FROM runtime-base AS prebuilt
COPY target/release/upload-http target/release/bench-client /usr/local/bin/

# --- the build from source ---
FROM ${RUST_IMAGE} AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p upload-http -p bench-client \
 && install -m 0755 target/release/upload-http target/release/bench-client /usr/local/bin/

# --- the default target: the runtime with the binaries built above ---
FROM runtime-base AS runtime
COPY --from=builder /usr/local/bin/upload-http /usr/local/bin/bench-client /usr/local/bin/
