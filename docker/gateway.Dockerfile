# The gateway (bot/): Starlette + uvicorn, Python 3.11. Build from the repository root:
#   docker build -f docker/gateway.Dockerfile -t dvcbot-gateway .
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app
WORKDIR /app

# dependencies first: this layer changes only with the lock file
COPY requirements/project.lock requirements/project.lock
RUN pip install -r requirements/project.lock

# the code runs from /app (dvcbot.PROJECT_ROOT): the gateway reads data/content, and creates the tables of
# bot/ and actions/ (one schema) when it starts
COPY pyproject.toml ./
COPY dvcbot dvcbot
COPY bot bot
COPY actions actions
COPY data data

RUN useradd --system --uid 10001 --home-dir /app dvcbot && mkdir -p /app/var && chown dvcbot /app/var
USER dvcbot

# logs: one JSON object per line (DVCBOT_LOG_FORMAT=text for readable lines); /metrics: Prometheus
ENV DVCBOT_GATEWAY_HOST=0.0.0.0 DVCBOT_GATEWAY_PORT=8000 DVCBOT_LOG_FORMAT=json
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/', timeout=2)"
# --proxy-headers: the client address comes from the load balancer's X-Forwarded-For
CMD ["python", "-m", "uvicorn", "bot.app:gateway_app", "--factory", "--host", "0.0.0.0", "--port", "8000", \
     "--proxy-headers", "--forwarded-allow-ips", "*"]
