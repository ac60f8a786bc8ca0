# syntax=docker/dockerfile:1
#
# lockgate's SageMaker image: one image for training jobs and endpoints.
#   docker run <image> train   one trial of a study (lockgate.pipelines.training.entrypoint):
#                              /opt/ml/input -> /opt/ml/model, /opt/ml/output/failure on error
#   docker run <image> serve   the model package in /opt/ml/model on port 8080
#                              ($SAGEMAKER_BIND_TO_PORT when SageMaker sets it)
# Both go through `python -m lockgate.aws.container` (exec form, so SageMaker's SIGTERM reaches
# it directly).
#
# Build from the repository root (.github/workflows/sagemaker-image.yml builds it this way):
#   docker buildx build --provenance=false --platform linux/amd64 -f docker/sagemaker.Dockerfile .
#
# Pinned by tag and by digest (the multi-platform index of python:3.11.13-slim-bookworm). To
# move to a newer patch release, resolve its digest and replace both:
#   docker buildx imagetools inspect python:3.11-slim-bookworm
FROM python:3.11.13-slim-bookworm@sha256:86adf8dbadc3d6e82ee5dd2c74bec2e1c2467cdad47886280501df722372d2e1

# lockgate's extras in the image; add torch here (LOCKGATE_EXTRAS=train,serve,aws,torch) to
# train the mlp family, at the price of a much larger image.
ARG LOCKGATE_EXTRAS=train,serve,aws

LABEL org.opencontainers.image.title="lockgate sagemaker" \
      org.opencontainers.image.description="lockgate's SageMaker training and serving container"

# Unbuffered: a trial's and the server's lines reach CloudWatch Logs as they are written.
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what the package build needs (pyproject's readme is README.md). One install layer, no
# pip cache, the build tree removed in the same layer. The build fails here if either mode
# cannot be imported.
COPY pyproject.toml README.md /tmp/lockgate-src/
COPY src /tmp/lockgate-src/src
RUN pip install --no-cache-dir "/tmp/lockgate-src[${LOCKGATE_EXTRAS}]" \
    && rm -rf /tmp/lockgate-src \
    && python -c "import lockgate.aws.container, lockgate.pipelines.training.entrypoint, lockgate.serving.server"

# No USER: SageMaker expects its containers to run as root ("SageMaker AI expects all
# containers to run with root users ... users that do not have root-level access can cause
# permissions issues", docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-inference-code.html);
# the /opt/ml folders a job or an endpoint reads and writes are SageMaker's, not this image's.

EXPOSE 8080

# No HEALTHCHECK: SageMaker judges an endpoint's health by GET /ping itself, and the same image
# runs training jobs, which serve nothing to probe.
HEALTHCHECK NONE

ENTRYPOINT ["python", "-m", "lockgate.aws.container"]
