# The action server (actions/): rasa-sdk, Python 3.11. Build from the repository root:
#   docker build -f docker/actions.Dockerfile -t dvcbot-actions .
# The same image runs the one-off jobs of the `dvcbot` command (schema, catalog load), see docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app
WORKDIR /app

COPY requirements/project.lock requirements/project.lock
RUN pip install -r requirements/project.lock

# actions read the catalog from the database; data/ holds the texts they answer with and what `dvcbot catalog
# load` loads; dvcbot/ is the shared settings and database plumbing (and the command for the jobs)
COPY pyproject.toml ./
COPY dvcbot dvcbot
COPY actions actions
COPY bot bot
COPY data data

RUN useradd --system --uid 10001 --home-dir /app dvcbot && mkdir -p /app/var && chown dvcbot /app/var
USER dvcbot

# logs: one JSON object per line (DVCBOT_LOG_FORMAT=text for readable lines)
ENV SANIC_HOST=0.0.0.0 DVCBOT_LOG_FORMAT=json
EXPOSE 5055
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5055/health', timeout=2)"
# rasa-sdk's app plus /metrics (Prometheus) and structured logs, in one process
CMD ["python", "-m", "actions.server", "--port", "5055"]
