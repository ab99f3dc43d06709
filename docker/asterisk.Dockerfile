# syntax=docker/dockerfile:1
# Asterisk 22 from Debian sid (Debian 12 has no Asterisk package) with the project's
# dialplan rendered for the compose network and the Mandarin prompts.
# Build from the repository root (compose.yaml does):
#   docker build -f docker/asterisk.Dockerfile -t ivr12333-asterisk .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG ASTERISK_BASE=debian:sid-slim

# --- shared build stage: keep identical in app.Dockerfile and asterisk.Dockerfile --------
# (BuildKit then builds it once and both images reuse the cached layers; a test checks.)
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
# Prompt synthesis tools: only in this stage, never in a runtime image.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      espeak-ng sox ffmpeg tzdata \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml ./
# The runtime dependencies first, from pyproject.toml alone: a code change then rebuilds
# from the COPY below and reuses this layer instead of downloading every package again.
RUN python -m venv /opt/ivr12333 \
 && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" >/tmp/requirements.txt \
 && /opt/ivr12333/bin/pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt
# The source packages in one step (what the .dockerignore allows of the repository):
# each build step costs a copy of the stage's file system with some storage drivers.
COPY . ./
# The project itself (its dependencies are in the layer above; no test extras), in the
# venv the runtime stage copies.
RUN /opt/ivr12333/bin/pip install --no-deps /src
# Prompts from the source tree, so recordings in prompts/recorded/ are used; the sounds end
# up in /build/sounds/zh/ivr12333/ for the Asterisk image.
RUN IVR_ENV=dev IVR_DATA_DIR=/build/data \
    /opt/ivr12333/bin/python -m cli.main prompts build --out /build/sounds --jobs 4
# --- end of shared build stage -----------------------------------------------------------

# The configuration, rendered by the project's own renderer (dialplan.render) for the
# compose network: FastAGI servers agi1:4573&agi2:4573, site includes, RTP range.
FROM build AS config
# Office hours and holidays are compiled into the dialplan: rebuild when they change and
# once a year (the holiday calendar covers the build year and the next, as far as the
# chinese_calendar release knows them).
ARG IVR_OFFICE_HOURS=09:00-12:00,13:30-17:00
ARG IVR_TIMEZONE=Asia/Shanghai
RUN IVR_ENV=dev IVR_OFFICE_HOURS="${IVR_OFFICE_HOURS}" IVR_TIMEZONE="${IVR_TIMEZONE}" \
    /opt/ivr12333/bin/python /src/docker/render_asterisk.py /build/asterisk

FROM ${ASTERISK_BASE} AS asterisk
# A fixed uid/gid (333) so the operator can give the mounted site folder to it; the
# package's postinst keeps an existing asterisk user.
RUN groupadd --system --gid 333 asterisk \
 && useradd --system --uid 333 --gid asterisk --home-dir /var/lib/asterisk \
      --no-create-home --shell /usr/sbin/nologin asterisk \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      asterisk asterisk-modules tzdata \
 && rm -rf /var/lib/apt/lists/*
COPY --from=config /build/asterisk/ /
COPY --from=build /build/sounds/zh/ /usr/share/asterisk/sounds/zh/
# /etc/asterisk becomes the rendered folder, so plain `asterisk` and `asterisk -rx` (the
# health check) find the instance's asterisk.conf; Debian's sample files go. The module
# folder is the multiarch path of whatever architecture this image is built for.
RUN set -eux; \
    moddir="$(ls -d /usr/lib/*/asterisk/modules | head -n 1)"; \
    sed -i "s#^astmoddir => .*#astmoddir => ${moddir}#" /etc/asterisk-compose/asterisk.conf; \
    rm -rf /etc/asterisk; \
    ln -s asterisk-compose /etc/asterisk; \
    for d in /var/lib /var/spool /var/run /var/log /var/cache; do \
      mkdir -p "$d/asterisk-compose"; \
      chown asterisk:asterisk "$d/asterisk-compose"; \
    done; \
    install -d -o asterisk -g asterisk /var/lib/asterisk-compose/keys; \
    mkdir -p /etc/asterisk-compose/site; \
    test -f /usr/share/asterisk/sounds/zh/ivr12333/goodbye.sln
COPY --chmod=755 docker/asterisk-health.sh /usr/local/bin/asterisk-health
USER asterisk
# SIP (the site's public transport) and the RTP range of rtp.conf.
EXPOSE 5060/udp 10000-10199/udp
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 CMD ["asterisk-health"]
# Foreground; the console log (verbose 3) goes to stdout, i.e. docker logs.
CMD ["asterisk", "-f"]
