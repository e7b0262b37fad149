# Upstream-style singleuser image, for the build-time comparison of `nox -s bench-images`
# only: one `pip install` of the stack and the spawner on the same base. Not an image of
# this project.
ARG BASE_IMAGE=nvcr.io/nvidia/pytorch:25.10-py3
FROM ${BASE_IMAGE}
# The source first: a first step of its own (an ARG first would equal the first step of
# one of our stages on the same base, and the classic builder's cache would mix the two).
COPY pyproject.toml README.md /src/
COPY firecrestspawner /src/firecrestspawner
COPY images/common/with-build-ca /tmp/with-build-ca
ARG CA_URL=""
ARG STACK_REQUIREMENTS=""
# hadolint ignore=DL3013,SC2086
RUN sh /tmp/with-build-ca pip install --no-cache-dir /src $STACK_REQUIREMENTS
CMD ["firecrestspawner-singleuser"]
