# The Switchyard gateway:  docker build -t switchyard .
#
# The build stage exports the prompt embedder to ONNX with the train extra (CPU torch), the
# same `switchyard embedder export` that `make demo` runs; the final stage keeps only the
# runtime dependencies, that exported embedder and the default router. It runs as a non-root
# user and reads nothing but its config, so the root filesystem can be read-only (the chart
# mounts the config at /etc/switchyard and an emptyDir at /tmp).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY switchyard switchyard
# The runtime environment, copied as is into the final stage.
# The kubernetes extra: the chart's gateway.discovery.mode=kubernetes watches EndpointSlices;
# the otel extra: OpenTelemetry tracing (tracing.enabled), loaded only when it is on.
RUN python -m venv /opt/venv && /opt/venv/bin/pip install '.[kubernetes,otel]'
# A throwaway environment to export the embedder; torch from the CPU index, never CUDA.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN python -m venv /opt/train \
    && /opt/train/bin/pip install torch==2.13.0 --index-url ${TORCH_INDEX} \
    && /opt/train/bin/pip install '.[train]'
RUN /opt/train/bin/switchyard embedder export --cache-dir /opt/switchyard/cache

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 switchyard \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/switchyard --create-home switchyard
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/switchyard/cache /opt/switchyard/cache
COPY switchyard/data/default-router /opt/switchyard/data/default-router
# ~/.cache/switchyard (the default embedder cache) is the baked one.
RUN mkdir -p /home/switchyard/.cache \
    && ln -s /opt/switchyard/cache /home/switchyard/.cache/switchyard \
    && chown -R 10001:10001 /home/switchyard
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/home/switchyard \
    SWITCHYARD_CACHE_DIR=/opt/switchyard/cache \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Relative router artifacts (data/default-router, as the chart names it) resolve here.
WORKDIR /opt/switchyard
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
CMD ["switchyard", "serve", "--config", "/etc/switchyard/gateway.yaml", "--host", "0.0.0.0"]
