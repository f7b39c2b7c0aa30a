# syntax=docker/dockerfile:1
# polycopy-stream: one image for every component (`polycopy worker`, `polycopy rtds`, `polycopy executor`, ...).
#   docker build -t polycopy-stream:0.1.0 .
#   docker run --rm polycopy-stream:0.1.0 topics list
# Stage 1 builds the project's wheel and the wheels of its dependencies; the final stage installs only those
# wheels: no compiler, no source tree, no pip cache. It runs as an unprivileged user and writes only under
# /var/lib/polycopy (mount a volume or an emptyDir there; the Helm chart does, with a read-only root filesystem).
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY polycopy ./polycopy
COPY producers ./producers
COPY processors ./processors
COPY sinks ./sinks
RUN pip wheel --no-deps --wheel-dir /wheels/project . \
    && pip wheel --wheel-dir /wheels/deps /wheels/project/*.whl

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="polycopy-stream" \
      org.opencontainers.image.description="Copy-trading pipeline for Polymarket on Kafka" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT"
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    POLYCOPY_DATA_DIR=/var/lib/polycopy
RUN groupadd --system --gid 10001 polycopy \
    && useradd --system --uid 10001 --gid polycopy --home-dir /var/lib/polycopy --no-create-home \
       --shell /usr/sbin/nologin polycopy \
    && install -d -o polycopy -g polycopy -m 0750 /var/lib/polycopy
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels/deps /wheels/project/*.whl
WORKDIR /var/lib/polycopy
USER 10001:10001
# /metrics, /healthz and /readyz: worker 9108, executor 9109, producer 9110, sink 9111, poller 9112,
# books 9113, alerts 9114.
EXPOSE 9108-9114
ENTRYPOINT ["polycopy"]
CMD ["--help"]
