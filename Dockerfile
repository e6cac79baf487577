# syntax=docker/dockerfile:1
# The image of every component (api, worker, beat, flower): the environment is exactly uv.lock,
# built the way .ci/setup builds .venv (`uv sync --frozen`); `--target check` also runs the
# lint and type steps of .ci/run. No secret is baked in: settings come from the environment or a
# mounted secrets directory (ORCH_SECRETS_DIR) at run time.
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
# The uv of .ci/setup, in a virtualenv of its own.
ARG UV_VERSION=0.13.9
RUN python -m venv /opt/uv && /opt/uv/bin/pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"
ENV UV_PROJECT_ENVIRONMENT=/app/.venv UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /app
# Dependencies first (cached while only our code changes); fails if uv.lock does not match pyproject.toml.
COPY pyproject.toml uv.lock README.md ./
RUN /opt/uv/bin/uv sync --frozen --no-install-project --no-editable --python python
COPY config ./config
COPY orchestrator ./orchestrator
COPY workers ./workers
RUN /opt/uv/bin/uv sync --frozen --no-editable --python python

# .ci/run's steps: the dev extra from the lock, then lint and types (tests need Redis:
# `docker run --network host celery-orchestrator:check python -m pytest -q`).
FROM build AS check
COPY . .
RUN /opt/uv/bin/uv sync --frozen --extra dev --python python
ENV PATH=/app/.venv/bin:$PATH
RUN ruff check . && ruff format --check . && mypy orchestrator workers config

FROM python:${PYTHON_VERSION}-slim AS runtime
RUN groupadd --system --gid 10001 orch && useradd --system --uid 10001 --gid orch --home-dir /app --no-create-home orch \
    && mkdir -p /data && chown orch:orch /data
WORKDIR /app
COPY --from=build /app/.venv /app/.venv
COPY examples ./examples
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    ORCH_WORKFLOWS_DIR=/app/examples ORCH_EMBEDDED_DIR=/data/embedded
USER 10001:10001
EXPOSE 8000 5555
CMD ["orchestrator", "--help"]
