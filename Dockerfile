# One image for api, worker, beat and the one-off migrate service (the command differs). Used by docker-compose.yml.

# The web app (web/ → web/dist), built with the same Vite build as scripts/setup.sh.
FROM node:20-bookworm-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY web/ ./
RUN npm run build -- --logLevel warn

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Pango and HarfBuzz for WeasyPrint (decision documents), DejaVu for the documents and the map's glyphs,
# postgresql-client for `breitband backup` / `restore` (pg_dump, pg_restore), curl for the health checks.
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl libexpat1 libpango-1.0-0 libpangoft2-1.0-0 \
      libharfbuzz-subset0 fonts-dejavu-core postgresql-client \
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
COPY --from=web /web/dist web/dist
RUN pip install --no-cache-dir -e . && useradd --system --home /app breitband && mkdir -p /app/var \
 && chown -R breitband /app/var
USER breitband
EXPOSE 8000
CMD ["breitband", "serve", "--host", "0.0.0.0"]
