# syntax=docker/dockerfile:1
#
# lockgate's data pipeline image. One image, four uses:
#   - Lambda lockgate-<env>-data-prep: the default CMD below (an upload -> a dataset version);
#   - Lambda lockgate-<env>-image-sync and lockgate-<env>-monitor: the same image, their
#     ImageConfig Command names their handler;
#   - the SageMaker Processing job for uploads too big for Lambda: ContainerEntrypoint
#     ["python", "-m", "lockgate.aws.processing"].
#
# Build from the repository root (Lambda takes a single-platform image manifest, hence
# --provenance=false; .github/workflows/data-pipeline-image.yml builds it this way):
#   docker buildx build --provenance=false --platform linux/amd64 \
#     -f docker/data-prep.Dockerfile --build-arg LOCKGATE_CONFIG_FILE=lockgate.toml .
#
# The base is pinned by an exact tag (AWS publishes a new dated tag every few days; move to a
# newer one deliberately). To pin its digest as well, resolve the tag once and append it:
#   docker buildx imagetools inspect public.ecr.aws/lambda/python:3.11.2024.11.22.15
#   FROM public.ecr.aws/lambda/python:3.11.2024.11.22.15@sha256:<the Digest it prints>
FROM public.ecr.aws/lambda/python:3.11.2024.11.22.15

# The project's lockgate.toml (its datasets, columns and prep settings), relative to the build
# context. lockgate's own repository keeps its example in examples/lockgate.toml.
ARG LOCKGATE_CONFIG_FILE=lockgate.toml

LABEL org.opencontainers.image.title="lockgate data-prep" \
      org.opencontainers.image.description="lockgate's data pipeline: Lambda and Processing"

# The stack sets LOCKGATE_CONFIG to the same path; set here too so a Processing job or a local
# `docker run` finds the baked configuration without being told.
ENV LOCKGATE_CONFIG=/var/task/lockgate.toml \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what the package build needs (pyproject's readme is README.md). One install layer, no
# pip cache, the build tree removed in the same layer. This base is Amazon Linux 2 (glibc
# 2.26): --prefer-binary takes the newest release that has a wheel for it rather than trying
# to compile a newer one from source. The build fails here if a handler cannot be imported
# (by `python`, the name the Processing job's ContainerEntrypoint uses).
COPY pyproject.toml README.md /tmp/lockgate-src/
COPY src /tmp/lockgate-src/src
RUN pip install --no-cache-dir --prefer-binary "/tmp/lockgate-src[aws]" \
    && rm -rf /tmp/lockgate-src \
    && python -c "import lockgate.aws.lambda_data, lockgate.aws.image_sync, lockgate.aws.lambda_monitor, lockgate.aws.processing"

COPY ${LOCKGATE_CONFIG_FILE} /var/task/lockgate.toml

# No USER: Lambda runs the function as a non-root user of its own (sbx_user*) whatever the
# image says, with a read-only file system but /tmp; everything above is world-readable.
# SageMaker Processing, which runs this image too, expects root (see sagemaker.Dockerfile).

# No HEALTHCHECK: the Lambda runtime interface client (the base image's ENTRYPOINT) and
# SageMaker Processing own the process's life cycle; there is no server to probe.
HEALTHCHECK NONE

CMD ["lockgate.aws.lambda_data.handler"]
