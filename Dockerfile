# One image for the scheduler and the dashboard (see docker-compose.yml).
FROM python:3.11-slim

# torch first, pinned as the Makefile pins it (TORCH_SPEC), from the CPU wheel index by default: on PyPI the same
# version is the CUDA build (gigabytes of CUDA libraries). For a GPU image:
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 .
ARG TORCH_SPEC=torch==2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install --no-cache-dir --index-url "$TORCH_INDEX" "$TORCH_SPEC"

WORKDIR /app
COPY pyproject.toml README.md ./
COPY roadwork ./roadwork
COPY configs ./configs
# the project and its other dependencies; the torch installed above satisfies its `torch` requirement
RUN pip install --no-cache-dir '.[postgres]'

ENV ROADWORK_HOME=/data \
    ROADWORK_DASHBOARD_ADDRESS=0.0.0.0 \
    PYTHONUNBUFFERED=1
VOLUME /data
EXPOSE 8501
ENTRYPOINT ["roadwork"]
CMD ["scheduler"]
