# syntax=docker/dockerfile:1
# roomhub hub node. Build: docker build -t roomhub .   Run: see compose.yaml and
# docs/operations.md ("Deployment"). Stage 1 builds the wheel; stage 2 installs only it.

FROM python:3.12-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY protocol/ protocol/
COPY server/ server/
COPY clients/ clients/
COPY bench/ bench/
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.12-slim-bookworm
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/roomhub/.venv/bin:$PATH
COPY --from=build /wheels /wheels
RUN python -m venv /opt/roomhub/.venv \
    && /opt/roomhub/.venv/bin/pip install /wheels/*.whl \
    && rm -rf /wheels \
    && groupadd --system --gid 10001 roomhub \
    && useradd --system --uid 10001 --gid roomhub --home-dir /nonexistent --shell /usr/sbin/nologin roomhub
USER 10001:10001
WORKDIR /tmp
EXPOSE 8765 8766
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('ROOMHUB_HTTP_PORT', '8766'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=2).status == 200 else 1)"]
# Settings come from ROOMHUB_* variables (docs/operations.md 2.1) or a mounted config file
# (args: --config /etc/roomhub/roomhub.toml). --host is a flag here, so it beats both: inside a
# container the node must listen on every interface.
ENTRYPOINT ["roomhub", "serve", "--host", "0.0.0.0"]
CMD []
