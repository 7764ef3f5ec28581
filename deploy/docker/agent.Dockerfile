# syntax=docker/dockerfile:1
# The Flotilla agent (for the Kubernetes runtime in deploy/kubernetes/agent, or `--runtime none`).
# Build from the repository root:
#   docker build -f deploy/docker/agent.Dockerfile -t flotilla-agent .
# Enrol once into the state volume, then run:
#   docker run -v flotilla-agent:/var/lib/flotilla-agent flotilla-agent agent enroll --hub ... --token ... --name ...
#   docker run -v flotilla-agent:/var/lib/flotilla-agent flotilla-agent
# Not built on the project's machines (they have no Docker engine); test/deploy/docker.test.ts lints it.

FROM node:24-bookworm-slim AS build
WORKDIR /src
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json .npmrc ./
RUN npm ci --ignore-scripts
COPY . .
RUN npm run build && npm pack --ignore-scripts --pack-destination /tmp

# Runtime: no embedded Postgres (an optional dependency only the hub uses).
FROM node:24-bookworm-slim
ENV ONNXRUNTIME_NODE_INSTALL=skip \
    NODE_ENV=production
COPY --from=build /tmp/flotilla-*.tgz /tmp/
# Into a directory, not -g: npm ignores --omit for a global install from a tarball (npm/cli#8284).
RUN npm install --prefix /opt/flotilla --omit=dev --omit=optional --no-package-lock --no-audit --no-fund /tmp/flotilla-*.tgz \
    && ln -s /opt/flotilla/node_modules/.bin/flotilla /usr/local/bin/flotilla \
    && rm -f /tmp/flotilla-*.tgz \
    && npm cache clean --force \
    && groupadd --system --gid 10001 flotilla \
    && useradd --system --uid 10001 --gid flotilla --home-dir /var/lib/flotilla-agent --shell /usr/sbin/nologin flotilla \
    && install -d -o flotilla -g flotilla -m 0700 /var/lib/flotilla-agent
USER 10001:10001
WORKDIR /var/lib/flotilla-agent
VOLUME ["/var/lib/flotilla-agent"]
EXPOSE 9464
# The agent's /metrics answers while its process is healthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9464/metrics').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["flotilla"]
CMD ["agent", "run", "--state-dir", "/var/lib/flotilla-agent", "--metrics-host", "0.0.0.0", "--metrics-port", "9464"]
