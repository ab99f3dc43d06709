# syntax=docker/dockerfile:1
# The Python services of the 12333 hotline: FastAGI server, staff console, migrations.
# Build from the repository root (compose.yaml does):
#   docker build -f docker/app.Dockerfile -t ivr12333-app .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

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

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10333 ivr12333 \
 && useradd --system --uid 10333 --gid ivr12333 --home-dir /var/lib/ivr12333 \
      --create-home --shell /usr/sbin/nologin ivr12333
COPY --from=build /opt/ivr12333 /opt/ivr12333
ENV PATH=/opt/ivr12333/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    IVR_ENV=prod \
    IVR_DATA_DIR=/var/lib/ivr12333
WORKDIR /var/lib/ivr12333
USER ivr12333
# 4573: FastAGI (agi1, agi2); 8333: the console. compose.yaml publishes only the console.
EXPOSE 4573 8333
# 0.0.0.0 is the container's own network namespace, not the host's: the FastAGI port is
# reachable only from the compose network (Asterisk), since compose publishes nothing for
# it. 127.0.0.1 here would be unreachable for the asterisk container.
# compose.yaml sets the command of each service:
#   ivr12333 agi serve --host 0.0.0.0      (agi1, agi2)
#   ivr12333 console serve --host 0.0.0.0  (console)
#   ivr12333 db migrate                    (migrate, one-shot)
CMD ["ivr12333", "agi", "serve", "--host", "0.0.0.0"]
