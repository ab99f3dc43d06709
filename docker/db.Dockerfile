# The database nodes of the cluster deployment (compose.cluster.yaml): Debian 12's
# PostgreSQL 15 under Patroni 3.0, and etcd 3.4 keeping Patroni's leader key. One image for
# both (the etcd service runs `etcd`, the pg1/pg2 services `patroni`), so a cluster needs
# one extra image, not two. Build from the repository root:
#   docker build -f docker/db.Dockerfile -t ivr12333-db .
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
# Debian's package would make and start a cluster of its own at install time: Patroni makes
# the cluster here. No service is started during the build.
RUN mkdir -p /etc/postgresql-common/createcluster.d \
 && echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/no-main.conf \
 && printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      postgresql-15 patroni etcd-server \
 && rm -rf /var/lib/apt/lists/* /usr/sbin/policy-rc.d \
 && install -d -o postgres -g postgres -m 700 /var/lib/postgresql/data \
 && install -d -o postgres -g postgres -m 2775 /var/run/postgresql \
 && install -d -o etcd -g etcd -m 700 /var/lib/etcd/data
# The settings every node shares, as they are in cluster/; each node's own part (name,
# addresses, passwords) comes from PATRONI_* variables set by compose.
COPY cluster/patroni.yml /etc/patroni/patroni.yml
COPY --chmod=755 docker/cluster/http-health.py /usr/local/bin/http-health
COPY --chmod=755 docker/cluster/db-init.sh /usr/local/bin/db-init
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PATRONI_POSTGRESQL_DATA_DIR=/var/lib/postgresql/data/pg \
    PATRONI_POSTGRESQL_PGPASS=/var/lib/postgresql/data/pgpass
USER postgres
EXPOSE 5432 8008 2379 2380
CMD ["patroni", "/etc/patroni/patroni.yml"]
