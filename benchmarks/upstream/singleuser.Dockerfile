# Upstream-style singleuser image, for the build-time comparison of `nox -s bench-images`
# only: one `pip install` of the stack and the spawner on the same base. Not an image of
# this project.
ARG BASE_IMAGE=nvcr.io/nvidia/pytorch:25.10-py3
FROM ${BASE_IMAGE}
ARG CA_URL=""
ARG STACK_REQUIREMENTS=""
COPY images/common/with-build-ca /tmp/with-build-ca
COPY pyproject.toml README.md /src/
COPY firecrestspawner /src/firecrestspawner
# hadolint ignore=DL3013,SC2086
RUN sh /tmp/with-build-ca pip install --no-cache-dir /src $STACK_REQUIREMENTS
CMD ["firecrestspawner-singleuser"]
