# One image for api, worker and beat (the command differs). Used by docker-compose.yml.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl libexpat1 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY breitband breitband
COPY geo geo
COPY permits permits
COPY notifications notifications
COPY accounts accounts
COPY migrations migrations
COPY data data
RUN pip install --no-cache-dir -e . && useradd --system --home /app breitband && mkdir -p /app/var \
 && chown -R breitband /app/var
USER breitband
EXPOSE 8000
CMD ["breitband", "serve", "--host", "0.0.0.0"]
