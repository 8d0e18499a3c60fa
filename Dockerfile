# One image for the api and worker services (docker-compose.yml picks the command).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY api ./api
COPY worker ./worker
COPY nnlib ./nnlib
# example specs pre-fill the dashboard's new-job editor
COPY examples ./examples
RUN pip install --no-cache-dir . && useradd --create-home gradq
USER gradq
EXPOSE 8000
CMD ["gradq", "--help"]
