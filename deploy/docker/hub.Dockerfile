# syntax=docker/dockerfile:1
# The Flotilla hub. Build from the repository root:
#   docker build -f deploy/docker/hub.Dockerfile -t flotilla-hub .
# Run it with an external Postgres (DATABASE_URL) and broker (MQTT_URL); see docs/operations.md.
# Not built on the project's machines (they have no Docker engine); test/deploy/docker.test.ts lints it.

# Build: the whole toolchain, then the npm package, exactly as `npm pack` makes it.
FROM node:24-bookworm-slim AS build
WORKDIR /src
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json .npmrc ./
RUN npm ci --ignore-scripts
COPY . .
RUN npm run build && npm pack --ignore-scripts --pack-destination /tmp

# Runtime: Node 24 and the installed package with its production dependencies only; no embedded
# Postgres (an optional dependency): the image needs DATABASE_URL.
FROM node:24-bookworm-slim
ENV ONNXRUNTIME_NODE_INSTALL=skip \
    NODE_ENV=production \
    FLOTILLA_HOME=/var/lib/flotilla \
    FLOTILLA_API_PORT=8080 \
    FLOTILLA_LOG_FORMAT=json
COPY --from=build /tmp/flotilla-*.tgz /tmp/
# Into a directory, not -g: npm ignores --omit for a global install from a tarball (npm/cli#8284).
RUN npm install --prefix /opt/flotilla --omit=dev --omit=optional --no-package-lock --no-audit --no-fund /tmp/flotilla-*.tgz \
    && ln -s /opt/flotilla/node_modules/.bin/flotilla /usr/local/bin/flotilla \
    && rm -f /tmp/flotilla-*.tgz \
    && npm cache clean --force \
    && groupadd --system --gid 10001 flotilla \
    && useradd --system --uid 10001 --gid flotilla --home-dir /var/lib/flotilla --shell /usr/sbin/nologin flotilla \
    && install -d -o flotilla -g flotilla -m 0700 /var/lib/flotilla
USER 10001:10001
WORKDIR /var/lib/flotilla
VOLUME ["/var/lib/flotilla"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.FLOTILLA_API_PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["flotilla"]
CMD ["hub", "--no-local-agent"]
