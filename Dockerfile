# One image for every Cadenza service; compose.yaml picks the service with the command
# (`cadenza api`, `cadenza registry`, `cadenza trainer`) and points it at NATS and PostgreSQL.
FROM python:3.11-slim

# CPU torch by default: the API and the registry never use it and a CPU trainer is for demos.
# For a GPU trainer build with --build-arg TORCH_INDEX=https://pypi.org/simple (its Linux wheel is
# the CUDA build).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install --no-cache-dir --index-url "$TORCH_INDEX" torch==2.13.0

WORKDIR /app
COPY pyproject.toml README.md ./
COPY events events
COPY model model
COPY services services
RUN pip install --no-cache-dir .

RUN useradd --create-home cadenza
# compose.yaml's nats-users volume is mounted here: a new volume takes this folder's owner, so that
# `cadenza nats-config` can write into it as the user the services run as.
RUN mkdir -m 700 /nats-users && chown cadenza: /nats-users
USER cadenza
EXPOSE 8000
CMD ["cadenza", "api", "--host", "0.0.0.0", "--port", "8000"]
