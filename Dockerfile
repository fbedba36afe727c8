# One image for the five services (and `saga-keys`, which makes their key pairs, and `sagactl`, the operators' CLI); each compose service picks its binary with
# `command:`. Build: docker compose build (or docker build -t saga-orchestrator .).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# Stripped: the binaries shrink from ~65 MB to ~10 MB each (panics still name the
# panicking place; full backtraces need a build with debug info).
ENV CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=symbols
RUN cargo build --release --locked \
        -p orchestrator -p db-step -p site-step -p user-step -p registry-step -p saga-keys -p sagactl \
    && mkdir /out \
    && cp target/release/orchestrator target/release/db-step target/release/site-step \
          target/release/user-step target/release/registry-step target/release/saga-keys \
          target/release/sagactl /out/

FROM debian:bookworm-slim
# curl only for the healthchecks; no shell tools are needed otherwise.
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/saga saga
COPY --from=build /out/ /usr/local/bin/
USER saga
WORKDIR /var/lib/saga
ENV LOG_FORMAT=json
CMD ["orchestrator"]
