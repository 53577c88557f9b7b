# One image for the API and the worker; the command picks the role.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

# Dependencies first, from the hashed runtime lock (no dev or local-stack packages), so
# a code change does not reinstall them.
COPY requirements/runtime.lock ./requirements/
RUN pip install --require-hashes -r requirements/runtime.lock

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

RUN pip install --no-deps --no-build-isolation . && useradd --system --uid 10001 dunwell
USER dunwell

EXPOSE 8000
CMD ["dunwell", "api"]
