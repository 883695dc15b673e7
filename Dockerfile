# syntax=docker/dockerfile:1
#
# The Strata image: one static binary (`strata serve` and the operator tools)
# on a small base. docker-compose.yml builds it for its three brokers:
#
#   docker build -t strata:local .
#   docker run --rm -p 9092:9092 -v strata-data:/data strata:local \
#       serve --data-dir /data --listen 0.0.0.0:9092 --advertise localhost:9092
#
# GO_VERSION follows the go directive in go.mod (the toolchain fetches a newer
# patch release itself if go.mod asks for one).
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Module downloads first, in their own layer, so code edits reuse them.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# CGO_ENABLED=0: a static binary that runs on any base image, no libc needed.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/strata ./cmd/strata

FROM alpine:3.22
# A shell and a non-root user; /data is created here so a named volume
# mounted on it starts out owned by that user.
RUN addgroup -S strata && adduser -S -G strata -u 10001 strata \
 && mkdir /data && chown strata:strata /data
COPY --from=build /out/strata /usr/local/bin/strata
USER strata
VOLUME /data
EXPOSE 9092
ENTRYPOINT ["/usr/local/bin/strata"]
CMD ["serve", "--data-dir", "/data", "--listen", "0.0.0.0:9092"]
