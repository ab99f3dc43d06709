# A stand-in for the official postgres:15 image, for `make deploy-test` on machines that
# reach the Debian mirror but no image registry. Debian 12's PostgreSQL 15 behind an
# entrypoint honouring what compose.yaml uses of the official image: POSTGRES_USER,
# POSTGRES_PASSWORD and POSTGRES_DB on first start, the data in /var/lib/postgresql/data
# (PGDATA), `postgres -c ...` as the command, pg_isready, PGPORT. Never used in production.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
# Debian's package would make a cluster of its own at install time: not wanted here.
RUN mkdir -p /etc/postgresql-common/createcluster.d \
 && echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/no-main.conf \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o postgres -g postgres -m 700 /var/lib/postgresql/data \
 && install -d -o postgres -g postgres -m 2775 /var/run/postgresql
# The build context is docker/deploy-test/.
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
USER postgres
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint"]
CMD ["postgres", "-c", "listen_addresses=*"]
