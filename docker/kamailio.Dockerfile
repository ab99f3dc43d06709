# The cluster's SIP entry point (compose.cluster.yaml): Debian 12's Kamailio 5.6 with its
# dispatcher module and cluster/kamailio.cfg as it is. Build from the repository root:
#   docker build -f docker/kamailio.Dockerfile -t ivr12333-kamailio .
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
# No service is started during the build (the package would start Kamailio on 5060).
RUN printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends kamailio \
 && rm -rf /var/lib/apt/lists/* /usr/sbin/policy-rc.d \
 && install -d -o kamailio -g kamailio /run/kamailio
COPY cluster/kamailio.cfg /etc/kamailio/kamailio.cfg
# An example list; compose mounts the deployment's own over it.
COPY cluster/dispatcher.list /etc/kamailio/dispatcher.list
USER kamailio
EXPOSE 5060/udp
# Foreground, logging to stderr (the container log). LISTEN and DISPATCHER_LIST come as
# `-A NAME=value` arguments after these (compose's command).
ENTRYPOINT ["kamailio", "-f", "/etc/kamailio/kamailio.cfg", "-DD", "-E", "-m", "64", "-M", "8", "-Y", "/run/kamailio", "-P", "/run/kamailio/kamailio.pid"]
CMD ["-A", "LISTEN=udp:0.0.0.0:5060", "-A", "DISPATCHER_LIST=\"/etc/kamailio/dispatcher.list\""]
