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
# [onnx]: the served API exports models to ONNX (GET /v1/models/{ref}/export)
RUN pip install --no-cache-dir ".[onnx]" && useradd --create-home gradq
USER gradq
EXPOSE 8000
CMD ["gradq", "--help"]
