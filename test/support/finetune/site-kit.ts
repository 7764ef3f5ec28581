import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';
import type { Logger } from 'pino';
import { enroll } from '../../../apps/agent/src/index.js';
import { startAgent, type RunningAgent } from '../../../apps/agent/src/compose.js';
import { parseAgentConfig } from '../../../apps/agent/src/config/agent-config.js';
import { readCredentials } from '../../../apps/agent/src/state/state-dir.js';
import { stopWorkloads } from '../../../apps/agent/src/runtime/process/stop-workloads.js';
import type { TestHub } from '../hub.js';
import { buildTinyBackbone } from './onnx-backbone.js';

/** The tiny backbone written as a file the agents may read, with its digest and the Model YAML that registers it. */
export async function writeBaseModel(dir: string): Promise<{ file: string; digest: string; yaml: string }> {
  const bytes = buildTinyBackbone();
  const file = path.join(dir, 'base.onnx');
  await writeFile(file, bytes);
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  const yaml = `apiVersion: flotilla.dev/v1
kind: Model
metadata: { name: bridge-defects }
spec:
  task: image-classification
  versions:
    - version: "1.0.0"
      uri: "file://${file}"
      digest: "${digest}"
      format: onnx
      input: { width: 32, height: 32, layout: NCHW, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] }
`;
  return { file, digest, yaml };
}

export interface SiteAgent {
  name: string;
  stateDir: string;
  agent: RunningAgent;
  /** `Basic ...` with the spoke's own credentials, as its uploads send. */
  authorization(): Promise<string>;
  stop(): Promise<void>;
}

/**
 * Enrols a spoke labelled site=<site> (through `hubUrl`, the API or a proxy in front of it) and
 * starts a real agent with the process runtime, reading models under `artifactRoot` and datasets
 * under `datasetRoot`; `mqttUrl` overrides the broker address the hub hands out.
 */
export async function startSiteAgent(
  t: TestHub,
  o: { name: string; site: string; dir: string; artifactRoot: string; datasetRoot?: string; hubUrl?: string; mqttUrl?: string; ca?: string; log: Logger },
): Promise<SiteAgent> {
  const tok = await t.api('POST', '/api/v1/enrollment-tokens', { uses: 1, labels: { site: o.site } });
  if (tok.status !== 201) throw new Error(`enrolment token: ${tok.status} ${JSON.stringify(tok.body)}`);
  const stateDir = path.join(o.dir, o.name);
  await enroll({ hubUrl: o.hubUrl ?? t.hub.apiUrl, token: tok.body.token, name: o.name, stateDir, ...(o.ca ? { ca: o.ca, fetch: fetchTrusting(o.ca) } : {}) });
  const config = parseAgentConfig({
    stateDir,
    runtime: 'process',
    metricsPort: 'off',
    gpu: 'none',
    artifactRoot: [o.artifactRoot],
    ...(o.datasetRoot ? { datasetRoot: [o.datasetRoot] } : {}),
    ...(o.mqttUrl ? { mqttUrl: o.mqttUrl } : {}),
  });
  const agent = await startAgent(config, { logger: o.log.child({ spoke: o.name }), processRuntime: { restartBackoff: { initialMs: 300, maxMs: 1000 }, fineTune: { threads: 1 } } });
  return {
    name: o.name,
    stateDir,
    agent,
    async authorization() {
      const c = await readCredentials(stateDir);
      return `Basic ${Buffer.from(`${c.mqtt.username}:${c.mqtt.password}`).toString('base64')}`;
    },
    async stop() {
      await agent.stop();
      await stopWorkloads(stateDir, { graceMs: 2_000 }).catch(() => undefined);
    },
  };
}

/** A fetch (enough for enrolment) that verifies an https server against `ca`, as the CLI's --ca does for the process. */
function fetchTrusting(ca: string): typeof fetch {
  return ((input: string | URL, init: RequestInit = {}) =>
    new Promise<Response>((resolve, reject) => {
      const req = https.request(new URL(String(input)), { method: init.method ?? 'GET', headers: Object.fromEntries(new Headers(init.headers).entries()), ca }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(new Response(Buffer.concat(chunks), { status: res.statusCode ?? 0 })));
      });
      req.on('error', reject);
      req.end(typeof init.body === 'string' ? init.body : undefined);
    })) as typeof fetch;
}
