# syntax=docker/dockerfile:1
# The gateway's image: `docker build -t django-gateway .` (see docs/deploy.md).
# Stage 1 builds the virtualenv and the static files; stage 2 is the slim runtime, without
# compilers or pip caches, running as an unprivileged user.
# 3.11 on purpose: 3.12.1 and 3.13.0 run a proxied request with 10% and 2% more instructions
# (README, Performance).
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# Compilers only for a dependency without a wheel for this platform; they stay in this stage,
# so their versions follow the base image's Debian release instead of being pinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY requirements.txt /tmp/requirements.txt
RUN pip install --no-compile -r /tmp/requirements.txt \
    && python -m compileall -q /opt/venv/lib
WORKDIR /app
COPY . .
# Static files are part of the image (served by WhiteNoise); no secret is needed to collect them.
RUN SECRET_KEY=build GATEWAY_VAR_DIR=/tmp/build-var \
        python manage.py collectstatic --noinput --verbosity 0 \
    && python -m compileall -q /app

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="django-gateway" \
      org.opencontainers.image.description="An API gateway for Django shops"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GATEWAY_BIND=0.0.0.0:8000 \
    GATEWAY_VAR_DIR=/var/lib/gateway
# The code belongs to root and is read-only for the gateway user; only GATEWAY_VAR_DIR is its.
RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid gateway --home-dir /var/lib/gateway \
        --no-create-home --shell /usr/sbin/nologin gateway \
    && install -d -o gateway -g gateway -m 0750 /var/lib/gateway
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
WORKDIR /app
USER 10001:10001
EXPOSE 8000
VOLUME ["/var/lib/gateway"]
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "gateway_project.probe", "/health"]
STOPSIGNAL SIGTERM
CMD ["gunicorn", "--config", "gateway_project/gunicorn.conf.py", "gateway_project.wsgi"]
