# One image per CRM service: `docker compose build` passes PACKAGE (crm-customer, ...).
# The same image runs the API (`<script> serve --no-workers`) and the worker
# (`<script> work`: relay and consumers), as two containers.
FROM python:3.11-slim
ARG PACKAGE
ENV UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_COMPILE_BYTECODE=1 \
    PATH=/opt/venv/bin:$PATH
RUN pip install --no-cache-dir "uv>=0.5"
WORKDIR /app
COPY pyproject.toml uv.lock ./
COPY shared ./shared
COPY services ./services
COPY deploy ./deploy
RUN uv sync --frozen --no-dev --package "${PACKAGE}"
USER nobody
