# The managed plugin's rootfs: one static binary in an empty image.
#
# Two ways to build it, both ending FROM scratch with the same files:
#   docker build .                   builds the binary in a golang image
#                                    (needs that image, pulled or loaded)
#   docker build --target prebuilt . takes bin/portal-volume built on the
#                                    host (scripts/build.sh): no registry
# scripts/plugin-rootfs.sh picks the second when no golang image is present.

# Listed first so that the classic builder, stopping at --target, never
# needs the golang image for it.
FROM scratch AS prebuilt
COPY bin/portal-volume /portal-volume
ENTRYPOINT ["/portal-volume"]

ARG GO_IMAGE=golang:1.26-bookworm
FROM ${GO_IMAGE} AS build
# The stamp: the build context has no .git, so the caller gives it
# (scripts/plugin-rootfs.sh passes what scripts/build.sh would use).
ARG VERSION=unstamped
ARG COMMIT=unknown
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$VERSION -X main.commit=$COMMIT" -o /out/portal-volume ./plugin

FROM scratch AS plugin
COPY --from=build /out/portal-volume /portal-volume
ENTRYPOINT ["/portal-volume"]
