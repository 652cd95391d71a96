# annexa worker image: `docker build -t annexa .` (see README, Deployment).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

FROM debian:bookworm-slim
# CA roots for https sinks and S3; the PostgreSQL client tools for backup-restore drills.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates postgresql-client \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /var/lib/annexa --create-home annexa
COPY --from=build /src/target/release/annexa /usr/local/bin/annexa
USER annexa
WORKDIR /var/lib/annexa
# The config is mounted at /etc/annexa; secrets come as environment variables (--env-file).
ENV ANNEXA_CONFIG=/etc/annexa/annexa.toml \
    ANNEXA_WORKER__LISTEN=0.0.0.0:9464
EXPOSE 9464
STOPSIGNAL SIGTERM
ENTRYPOINT ["annexa"]
CMD ["worker"]
