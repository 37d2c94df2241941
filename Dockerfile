# The image the Helm chart runs (`vkube server` in the tenant pod).
#   docker build -t REGISTRY/vkube:0.1.0 .
#   helm install NAME chart -n NS --set image.repository=REGISTRY/vkube
# Build stage: the workspace's release binary (a cold build takes minutes).
FROM rust:1.89-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p vkube \
    && install -m 0755 target/release/vkube /usr/local/bin/vkube

# Runtime: glibc, CA certificates, no shell, non-root (uid 65532), which the
# chart's restricted securityContext expects.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/vkube /usr/local/bin/vkube
USER 65532:65532
ENTRYPOINT ["vkube"]
CMD ["server"]
