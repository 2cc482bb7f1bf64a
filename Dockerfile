# One application image for the api, mlflow, ray-head and ray-worker services.
# A CUDA-enabled PyTorch base; the project's dependencies in their own layer (rebuilt only when pyproject.toml changes),
# then the sources; a non-root user.
ARG BASE_IMAGE=pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime
FROM ${BASE_IMAGE}

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 1000 rskd && mkdir -p /app /rskd/storage /rskd/home /mlflow/artifacts /data \
    && chown -R rskd:rskd /app /rskd /mlflow
WORKDIR /app

# dependencies only: empty packages let pip resolve and install everything pyproject.toml asks for
COPY pyproject.toml README.md ./
RUN mkdir -p rskd_core worker service dashboards \
    && touch rskd_core/__init__.py worker/__init__.py service/__init__.py dashboards/__init__.py \
    && pip install '.[worker,service]' && pip uninstall -y rskd-sweeps && rm -rf rskd_core worker service dashboards

# the sources
COPY rskd_core ./rskd_core
COPY worker ./worker
COPY service ./service
COPY dashboards ./dashboards
RUN pip install --no-deps . && chown -R rskd:rskd /app

USER rskd
ENV HOME=/home/rskd
EXPOSE 8000 5000 8265 6379
CMD ["uvicorn", "service.app:create_app", "--factory", "--host=0.0.0.0", "--port=8000"]
