# DHR FHIR R4 server. PostgreSQL in production: set DHR_DATABASE_URL.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DHR_DATA_DIR=/var/lib/dhr \
    DHR_HOST=0.0.0.0 \
    DHR_PORT=8080

WORKDIR /app
COPY pyproject.toml README.md ./
COPY dhr ./dhr
COPY consent ./consent
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --home-dir /var/lib/dhr --create-home dhr

USER 10001
EXPOSE 8080
ENTRYPOINT ["dhr", "serve"]
