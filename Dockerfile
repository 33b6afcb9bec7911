# One image for the scheduler and the dashboard (see docker-compose.yml).
FROM python:3.11-slim

# CPU torch by default; for a GPU image build with --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install --no-cache-dir --index-url "$TORCH_INDEX" "torch>=2.6"

WORKDIR /app
COPY pyproject.toml README.md ./
COPY roadwork ./roadwork
COPY configs ./configs
RUN pip install --no-cache-dir '.[postgres]'

ENV ROADWORK_HOME=/data \
    ROADWORK_DASHBOARD_ADDRESS=0.0.0.0 \
    PYTHONUNBUFFERED=1
VOLUME /data
EXPOSE 8501
ENTRYPOINT ["roadwork"]
CMD ["scheduler"]
