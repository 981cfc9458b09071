# cachekeeper as a container: the daemon keeps the target dirs mounted under /work and the
# BuildKit cache of the engine whose socket is mounted at /var/run/docker.sock within budgets.
#
#   docker build -t cachekeeper .
#   docker run -d --name cachekeeper --user "$(id -u):$(id -g)" \
#     --group-add "$(stat -c %g /var/run/docker.sock)" \
#     -v /var/run/docker.sock:/var/run/docker.sock -v "$HOME/src:/work" \
#     -p 127.0.0.1:9184:9184 cachekeeper
#
# Run it as the user who owns the mounted work dirs (cachekeeper removes files there) and in
# the group of the Docker socket. The default user, 65532, owns nothing on the host.
#
# Build arguments:
#   RUST_IMAGE     the build stage's base (cargo and rustc)
#   RUNTIME_IMAGE  the runtime base: glibc and libgcc_s are all the binary needs (no shell)
#   BINARY         the stage or image that provides /out/root (the binary and the state and
#                  runtime dirs); the tests pass an image holding a binary built outside

ARG RUST_IMAGE=docker.io/library/rust:1-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
ARG BINARY=build

FROM ${RUST_IMAGE} AS build
ARG RUST_IMAGE
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY crates crates
COPY config config
# The cargo registry and target dir are cache mounts whose ids name the base image: builds on
# two bases never share (or poison) a cache. The binary is copied out of the target mount,
# which is not part of the image.
RUN --mount=type=cache,id=cachekeeper-registry-${RUST_IMAGE},target=/usr/local/cargo/registry \
    --mount=type=cache,id=cachekeeper-target-${RUST_IMAGE},target=/src/target \
    cargo build --release --locked \
 && mkdir -p /out/root/usr/local/bin /out/root/var/lib/cachekeeper /out/root/run/cachekeeper \
 && chmod 1777 /out/root/var/lib/cachekeeper /out/root/run/cachekeeper \
 && cp target/release/cachekeeper /out/root/usr/local/bin/

FROM ${BINARY} AS binary

FROM ${RUNTIME_IMAGE}
# The binary stays root's; the state and socket dirs are writable by whichever user runs it
# (mode 1777, like /tmp), so `--user` can match the owner of the work dirs. cachekeeper keeps
# its state and its socket in dirs of its own inside them (`state/`, `daemon/`: mode 0700, the
# running user's): it never makes its files in a dir that others may write to.
COPY --from=binary /out/root/ /
COPY deploy/container.toml /etc/cachekeeper/config.toml
ENV CACHEKEEPER_SOCKET=/run/cachekeeper/daemon/cachekeeper.sock \
    STATE_DIRECTORY=/var/lib/cachekeeper/state
USER 65532:65532
VOLUME ["/var/lib/cachekeeper"]
EXPOSE 9184
# The daemon stops on SIGTERM within its stop-timeout (20 s by default): give `docker stop`
# a grace period above that (`-t 60`, Compose's stop_grace_period).
STOPSIGNAL SIGTERM
# Distroless images have no curl: the binary asks its own daemon over the socket.
HEALTHCHECK --interval=30s --timeout=10s --start-period=2m --retries=3 \
    CMD ["cachekeeper", "healthcheck"]
ENTRYPOINT ["cachekeeper"]
CMD ["daemon"]
