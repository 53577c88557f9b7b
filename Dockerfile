# One image for the API and the worker; the command picks the role.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY api ./api
COPY workflows ./workflows
COPY activities ./activities
COPY ledger ./ledger
COPY stores ./stores
COPY billing ./billing
COPY tax ./tax
COPY dunwell ./dunwell
COPY worker.py ./

RUN pip install . && useradd --system --uid 10001 dunwell
USER dunwell

EXPOSE 8000
CMD ["dunwell", "api"]
