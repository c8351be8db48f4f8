# The Rasa server: the official Rasa Open Source 3.6 image plus nlu/ (custom components), the assistant's
# configuration, domain and data, and a trained model. Build from the repository root after `make model`:
#   docker build -f docker/rasa.Dockerfile --build-arg MODEL=$(basename $(.venv/bin/python -c \
#     'from dvcbot.training import current_model; print(current_model())')) -t dvcbot-rasa .
FROM rasa/rasa:3.6.21

# the model file under models/ to serve (default: every model there; Rasa serves the newest)
ARG MODEL=*.tar.gz

USER root
WORKDIR /app
# custom components are imported by config.yml as nlu.<module>
# logs: dvcbot's JSON lines through nlu/server.py (DVCBOT_LOG_FORMAT=text for Rasa's own format)
ENV PYTHONPATH=/app RASA_TELEMETRY_ENABLED=false SQLALCHEMY_SILENCE_UBER_WARNING=1 TF_CPP_MIN_LOG_LEVEL=2 \
    DVCBOT_LOG_FORMAT=json
COPY nlu nlu
COPY dvcbot/__init__.py dvcbot/logs.py dvcbot/logmask.py dvcbot/
COPY config.yml credentials.yml ./
COPY domain domain
COPY data data
# endpoints: action server, SQL tracker store and lock store, all from environment variables (docker-compose.yml
# picks Rasa's RedisLockStore with DVCBOT_RASA_LOCK_STORE=redis)
COPY endpoints.yml ./
COPY models/${MODEL} models/
RUN chown -R 1001 /app
USER 1001

EXPOSE 5005
# nlu/server.py is `rasa` with the action-answer schema compiled once (see that file).
# the API token comes from the environment at run time (never baked into the image or the command line of
# the compose file); the API and the REST channel stay inside the compose network (no published port)
ENTRYPOINT ["/bin/sh", "-c", "exec python -m nlu.server run --enable-api --auth-token \"$DVCBOT_RASA_TOKEN\" --port 5005 \
  --model models --endpoints endpoints.yml --credentials credentials.yml"]
