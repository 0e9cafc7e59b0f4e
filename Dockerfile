# One image for every Ravel process: migrate, worker, beat, flower, the CLI.
FROM python:3.11-slim
# The OpenAI SDK 3.x uses the OS trust store: slim images need ca-certificates.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
COPY tasks ./tasks
COPY models ./models
COPY examples ./examples
RUN pip install --no-cache-dir .
RUN useradd --create-home ravel
USER ravel
ENV PYTHONUNBUFFERED=1
