# syntax=docker/dockerfile:1
# Holdfast: build with `docker build -t holdfast .`; run as README "Deploy → With Docker" shows.
# scripts/check-dockerfile builds this file's exact build context and checks its runtime
# contract without a Docker engine.

# ---- build: dependencies first, so a source change doesn't recompile them ----
# The toolchain this repository is built and tested with (some locked dependencies need ≥ 1.94).
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# The image ships a binary without symbols or debug info (smaller; backtraces still name
# the panic location).
ENV CARGO_PROFILE_RELEASE_STRIP=symbols
# jemalloc (the process's allocator) is built from its C sources, which needs make; the slim
# image has the C compiler but not make.
RUN command -v make >/dev/null \
 || (apt-get update && apt-get install -y --no-install-recommends make && rm -rf /var/lib/apt/lists/*)
# Manifests (the workspace's and its simulator crate's) plus an empty file for every target
# they name (cargo refuses a manifest whose targets are missing): this layer, every
# dependency compiled, is cached until a Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
# Build settings (the bundled SQLite's compile options): they change every dependency built.
COPY .cargo .cargo/
COPY crates/sim/Cargo.toml crates/sim/
# actix-http discarding a refused upload through a small buffer, sqlx-core with TCP_NODELAY
# and sqlx-sqlite handing rows over in chunks (Cargo.toml's [patch.crates-io]): dependencies,
# built in this layer.
COPY crates/actix-http crates/actix-http/
COPY crates/sqlx-core crates/sqlx-core/
COPY crates/sqlx-sqlite crates/sqlx-sqlite/
RUN for p in $(sed -n 's/^path = "\(.*\)"$/\1/p' Cargo.toml); do \
      mkdir -p "$(dirname "$p")" && echo 'fn main() {}' > "$p"; \
    done \
 && mkdir -p crates/sim/src && touch crates/sim/src/lib.rs \
 && cargo build --release --locked --bin holdfast \
 && rm -rf src benches crates/sim/src
# The real sources. Migrations and templates are embedded in the binary at compile time.
COPY src ./src
COPY benches ./benches
COPY crates ./crates
COPY migrations ./migrations
COPY templates ./templates
# GET /docs serves the README the binary was built with.
COPY README.md ./
# Touch so cargo sees the sources as newer than the dummy build above.
RUN touch src/main.rs src/lib.rs crates/sim/src/lib.rs \
 && cargo build --release --locked --bin holdfast \
 && cp target/release/holdfast /usr/local/bin/holdfast

# ---- runtime: slim Debian, no compiler, no shell tools needed, non-root ----
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 holdfast \
 && useradd --system --uid 10001 --gid holdfast --home-dir /data --shell /bin/sh holdfast \
 && mkdir -p /data \
 && chown holdfast:holdfast /data
COPY --from=build /usr/local/bin/holdfast /usr/local/bin/holdfast
# SQLite on the volume by default; set DATABASE_URL=postgres://… to use Postgres instead.
ENV DATABASE_URL=sqlite:///data/holdfast.db \
    HOLDFAST_BIND=0.0.0.0:8080 \
    HOLDFAST_LOG_FORMAT=json \
    RUST_LOG=info,sqlx=warn
VOLUME ["/data"]
WORKDIR /data
USER holdfast:holdfast
EXPOSE 8080
# The binary checks itself (`holdfast healthcheck` GETs /readyz), so the image needs no curl.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 CMD ["/usr/local/bin/holdfast", "healthcheck"]
# SIGTERM → graceful shutdown (stop accepting, finish in-flight webhooks, up to 25 s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/holdfast"]
CMD ["serve"]
