# The project image: every Kubeflow pipeline step runs in it (pipelines/image.py names it).
#   docker build -t localhost:5001/asymdiffrec:0.1.0 .
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu -t asymdiffrec:cpu .
# The default torch wheel is a CUDA build: the training step runs on GPU nodes (torchrun for
# several GPUs) and falls back to the CPU when it lands on a node without one.
FROM python:3.11-slim

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
# engine: spark (the feature jobs and the join on Spark) needs Java and pyspark in the image;
#   docker build --build-arg WITH_SPARK=1 -t localhost:5001/asymdiffrec:0.1.0-spark .
ARG WITH_SPARK=0

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    BENTOML_HOME=/bentoml \
    GX_ANALYTICS_ENABLED=False

WORKDIR /app

RUN if [ "$WITH_SPARK" = "1" ]; then \
      apt-get update && apt-get install -y --no-install-recommends openjdk-17-jre-headless && rm -rf /var/lib/apt/lists/*; \
    fi

# torch first, from the chosen index: the constraint torch==X also accepts its local build X+cuNNN.
COPY constraints.txt pyproject.toml README.md ./
RUN TORCH=$(grep -E '^torch==' constraints.txt) && pip install --index-url "$TORCH_INDEX_URL" "$TORCH"

# Editable install: params.yaml and the Feast configs stay beside the code that reads them.
COPY . .
RUN EXTRAS=cluster && if [ "$WITH_SPARK" = "1" ]; then EXTRAS=cluster,spark; fi \
 && pip install -c constraints.txt -e ".[$EXTRAS]" \
 && pip install -c constraints.txt --no-deps recbole \
 && python -c "import common, components, pipelines, serving, models, feature_repo.definitions"

# The BentoML model store: a PersistentVolumeClaim is mounted here on the cluster.
RUN mkdir -p /bentoml
