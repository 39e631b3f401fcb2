# photosearch API and indexer: CPU torch, the default model's checkpoint and pretrained towers inside
# the image (nothing is downloaded at run time), a non-root user. docker-compose.yml runs it.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch
WORKDIR /app
COPY pyproject.toml README.md ./
COPY app ./app
COPY cli ./cli
COPY indexer ./indexer
COPY models ./models
COPY migrations ./migrations
COPY alembic.ini ./
RUN pip install -e .
# Load the default model once: the build fails here, not at start-up, if anything is missing.
RUN HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    python -c "from models.registry import create_encoder; create_encoder('joint-default', device='cpu')"

FROM python:3.11-slim AS runtime
RUN useradd --create-home --uid 10001 photosearch && mkdir /data && chown photosearch /data
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    PHOTOSEARCH_DATA_DIR=/data \
    PHOTOSEARCH_INFERENCE__ONNX_CACHE_DIR=/data/onnx-cache \
    PHOTOSEARCH_DEVICE=cpu
WORKDIR /app
USER photosearch
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
CMD ["photosearch", "serve", "--host", "0.0.0.0", "--port", "8000"]
