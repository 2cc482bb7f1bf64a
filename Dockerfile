# One application image for the api, mlflow, ray-head and ray-worker services.
# A CUDA-enabled PyTorch base; the project's dependencies in their own layer (rebuilt only when pyproject.toml changes),
# then the sources; a non-root user.
ARG BASE_IMAGE=pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime
FROM ${BASE_IMAGE}

# PIP_BREAK_SYSTEM_PACKAGES: a Debian/Ubuntu system Python refuses pip installs ("externally managed") without it;
# a conda Python (the PyTorch images) or a venv ignores it.
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_BREAK_SYSTEM_PACKAGES=1
# the base needs a Python with pip; `python` must name it (sweeps run as `python -m worker.sweep`, and Debian's python3
# comes without a `python` unless python-is-python3 is installed)
RUN set -e; command -v python >/dev/null || ln -s "$(command -v python3)" /usr/local/bin/python; \
    python -m pip --version >/dev/null 2>&1 \
    || { echo "BASE_IMAGE: its python has no pip (Debian: apt-get install python3-pip, or a venv on PATH)" >&2; exit 1; }
RUN useradd --create-home --uid 1000 rskd && mkdir -p /app /rskd/storage /rskd/home /mlflow/artifacts /data \
    && chown -R rskd:rskd /app /rskd /mlflow
WORKDIR /app

# dependencies only: empty packages (and an empty README, which pyproject names) let pip resolve and install
# everything pyproject.toml asks for, so this layer is rebuilt only when pyproject.toml changes
COPY pyproject.toml ./
RUN mkdir -p rskd_core worker service dashboards \
    && touch README.md rskd_core/__init__.py worker/__init__.py service/__init__.py dashboards/__init__.py \
    && python -m pip install '.[worker,service]' && python -m pip uninstall -y rskd-sweeps \
    && rm -rf README.md rskd_core worker service dashboards

# the sources
COPY README.md ./
COPY rskd_core ./rskd_core
COPY worker ./worker
COPY service ./service
COPY dashboards ./dashboards
RUN python -m pip install --no-deps . && chown -R rskd:rskd /app

USER rskd
ENV HOME=/home/rskd
EXPOSE 8000 5000 8265 6379
CMD ["uvicorn", "service.app:create_app", "--factory", "--host=0.0.0.0", "--port=8000"]
