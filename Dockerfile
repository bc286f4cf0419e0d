# One image for every paysaga process. The default command serves the API; the same image runs
#   python -m worker          the sagas (scale with `docker compose up --scale worker=N`)
#   python -m sandbox_psp     the sandbox PSP
#   paysaga migrate           the ledger database migrations (a one-shot job)
#   paysaga search-attributes registers the custom search attributes on a Temporal cluster
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PAYSAGA_DATA_DIR=/var/lib/paysaga \
    PAYSAGA_API_HOST=0.0.0.0 \
    PAYSAGA_PSP_HOST=0.0.0.0

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin paysaga \
    && install -d -o paysaga -g paysaga /var/lib/paysaga

COPY . /tmp/paysaga-src
RUN pip install /tmp/paysaga-src && rm -rf /tmp/paysaga-src

USER paysaga
WORKDIR /var/lib/paysaga
EXPOSE 8000 8100

HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PAYSAGA_API_PORT', '8000') + '/healthz', timeout=4)"]

CMD ["python", "-m", "api"]
