# One image for every paysaga process. The default command serves the API; the same image runs
#   python -m worker          the sagas (scale with `docker compose up --scale worker=N`)
#   python -m sandbox_psp     the sandbox PSP
#   paysaga migrate           the ledger database migrations (a one-shot job)
#   paysaga search-attributes registers the custom search attributes on a Temporal cluster
# Two stages: the builder installs the locked runtime dependencies (requirements.lock, hashes
# checked; `make lock` regenerates it) into a virtualenv, then paysaga itself; the runtime stage
# takes that virtualenv alone: no pip cache, no build tools, no development tools (the `temporal`
# CLI and the embedded PostgreSQL are the `dev` extra, never installed here). A code change
# rebuilds only the last layers. The base is pinned to an exact release; pin its digest too
# (PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:...) where your registry policy asks for it.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/paysaga
COPY requirements.lock /tmp/requirements.lock
RUN /opt/paysaga/bin/pip install --require-hashes --no-deps -r /tmp/requirements.lock
COPY . /tmp/paysaga-src
RUN /opt/paysaga/bin/pip install --no-deps /tmp/paysaga-src

FROM ${PYTHON_IMAGE} AS runtime

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/paysaga/bin:$PATH \
    PAYSAGA_DATA_DIR=/var/lib/paysaga \
    PAYSAGA_API_HOST=0.0.0.0 \
    PAYSAGA_PSP_HOST=0.0.0.0

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin paysaga \
    && install -d -o paysaga -g paysaga /var/lib/paysaga

COPY --from=builder /opt/paysaga /opt/paysaga

USER paysaga
WORKDIR /var/lib/paysaga
EXPOSE 8000 8100 9464

HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PAYSAGA_API_PORT', '8000') + '/healthz', timeout=4)"]

CMD ["python", "-m", "api"]
