# A small runtime image for CI jobs: the swarmseal binary, the docker CLI (for
# `swarmseal exec -- docker stack deploy ...`) and the ssh client (for ssh:// endpoints).
#
#   docker build -t swarmseal .
#   docker run --rm -v "$PWD:/repo" -e SWARMSEAL_AGE_KEY -e DOCKER_HOST swarmseal -e production plan
#
# The image holds no identity and no key: pass them at run time (SWARMSEAL_AGE_KEY, -i FILE
# from a mounted folder, ~/.ssh mounted read-only for ssh://). It runs as an unprivileged
# user; to reach a local socket (-v /var/run/docker.sock:/var/run/docker.sock) add the
# socket's group: --group-add "$(stat -c %g /var/run/docker.sock)".
#
# Base images are pinned by tag here; pin them by digest in your own build for
# reproducibility.

ARG RUST_VERSION=1.89
ARG DEBIAN=bookworm
ARG DOCKER_CLI=27-cli

FROM docker:${DOCKER_CLI} AS docker-cli

FROM rust:${RUST_VERSION}-slim-${DEBIAN} AS build
WORKDIR /src
COPY . .
RUN cargo install --locked --path . --root /out

FROM debian:${DEBIAN}-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates openssh-client git \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 swarmseal
COPY --from=docker-cli /usr/local/bin/docker /usr/local/bin/docker
COPY --from=build /out/bin/swarmseal /usr/local/bin/swarmseal
USER swarmseal
WORKDIR /repo
ENTRYPOINT ["swarmseal"]
