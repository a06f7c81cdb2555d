# The bare test image with what Debian's cloud images already have (python3, sudo) and the
# package index of the build's hour kept: the host most modules provision (tests/testbed.py).
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 sudo
