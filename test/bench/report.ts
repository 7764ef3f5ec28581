/** Figures of one `npm run bench` run: the JSON written to --out, and its markdown table. */

export interface Summary {
  n: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
}

/** Nearest-rank percentiles. */
export function summarize(xs: number[]): Summary {
  const s = [...xs].sort((a, b) => a - b);
  const rank = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? NaN;
  return { n: s.length, p50Ms: rank(50), p99Ms: rank(99), maxMs: s[s.length - 1] ?? NaN, meanMs: s.reduce((a, b) => a + b, 0) / Math.max(1, s.length) };
}

/** Enrolment rate per tenth of the fleet, in the order enrolments were answered. */
export interface EnrolmentDeciles {
  /** Spokes per second within each tenth. */
  perSecond: number[];
  /** Last tenth's rate over the first tenth's (target >= 0.90: the cost of an enrolment does not grow with the fleet). */
  lastOverFirst: number;
}

/** `startMs` and `doneAtMs` on one wall clock (performance.timeOrigin + now), doneAtMs sorted. */
export function enrolmentDeciles(startMs: number, doneAtMs: readonly number[]): EnrolmentDeciles {
  const n = doneAtMs.length;
  const perSecond: number[] = [];
  let prevEnd = startMs;
  for (let d = 0; d < 10; d++) {
    const a = Math.floor((d * n) / 10);
    const b = Math.floor(((d + 1) * n) / 10);
    if (b <= a) {
      perSecond.push(NaN);
      continue;
    }
    const end = doneAtMs[b - 1]!;
    perSecond.push((b - a) / Math.max(0.001, (end - prevEnd) / 1000));
    prevEnd = end;
  }
  return { perSecond, lastOverFirst: (perSecond[9] ?? NaN) / (perSecond[0] ?? NaN) };
}

export interface Limits {
  nofile: Array<{ process: string; pid: number; wanted: number; soft: number | null; hard: number | null; enough: boolean; note: string }>;
  ephemeralPorts: { low: number; high: number; count: number } | null;
  sourceAddresses: number;
  somaxconn: number | null;
}

export interface RealAgent {
  runtime: 'process';
  idleSeconds: number;
  rssBytes: number;
  peakRssBytes: number;
  cpuSeconds: number;
  idleCpuCoreFraction: number;
  online: boolean;
}

/** A run that stopped early (a limit it could not raise), with what it measured until then. */
export interface PartialBenchResult {
  spokes: number;
  broker: 'embedded' | 'mosquitto';
  startedAt: string;
  durationSeconds: number;
  stoppedAfter: 'enrol';
  why: string;
  /** os.loadavg() at the end: other work on the machine. */
  load: number[];
  enrolment: BenchResult['enrolment'];
  renderedAfterEnrolSeconds: number;
  placement: BenchResult['placement'];
  hub: { peakRssBytes: number | null; peakRssBytesPer1000Spokes: number | null; rssAtEndBytes: number | null };
  limits: Limits;
  phases: Phase[];
  profiles: Record<string, string>;
  hubMemory: BenchResult['hubMemory'];
  realAgent: RealAgent | null;
}

export interface Phase {
  name: string;
  seconds: number;
  hubCpuSeconds: number;
  postgresCpuSeconds: number | null;
  brokerCpuSeconds: number | null;
  /** The simulated agents' process (all N agents). */
  simCpuSeconds: number | null;
}

export interface BenchResult {
  spokes: number;
  broker: 'embedded' | 'mosquitto';
  startedAt: string;
  durationSeconds: number;
  machine: { cpus: number; cpuModel: string; memoryBytes: number; node: string; os: string; broker: string; postgres: string; simProcesses: number };
  /** Apply sent -> each spoke's acknowledgement recorded in Postgres. */
  convergence: Summary;
  /** First floor message sent -> each echo received. */
  floor: Summary;
  /** convergence p99 / floor p99. */
  ratio: number;
  convergenceDetail: {
    applyAnsweredSpokes: number | null;
    /** spokeSummary.spokes of the answer: every spoke the apply changed, listed or not. */
    applyAffectedSpokes?: number | null;
    /** Size of the apply's JSON answer. */
    applyAnswerBytes?: number;
    allSeenByPollingMs: number;
    hubRenderSeconds: number;
    /** Apply sent -> each spoke's envelope arrived at its agent. */
    envelopeDelivery: Summary;
    envelopeBytesMean: number;
    statusBytesMean: number;
  };
  enrolment: { spokes: number; seconds: number; perSecond: number; latency: Summary; concurrency: number; deciles?: EnrolmentDeciles };
  /** After the last enrolment was answered, until every enrolled spoke had its first desired state stored. */
  renderedAfterEnrolSeconds?: number;
  /** One real `flotilla agent run` measured from outside (null: skipped or failed). */
  realAgent?: RealAgent | null;
  limits?: Limits;
  load?: number[];
  /** Hub CPU profile file per phase (--profile). */
  profiles?: Record<string, string>;
  /** --profile: the hub's memory after a GC with the fleet connected, and what the allocations still live since its start are (sampled). */
  hubMemory?: {
    usage: { rss: number; heapTotal: number; heapUsed: number; external: number; arrayBuffers: number };
    sampledLiveBytes: number;
    sampledLiveBytesPer1000Spokes: number;
    top: Array<{ fn: string; bytes: number; share: number }>;
    file: string;
  } | null;
  hub: {
    cpuSeconds: number;
    cpuSecondsPer1000Spokes: number;
    peakRssBytes: number | null;
    peakRssBytesPer1000Spokes: number | null;
    rssAtEndBytes: number | null;
    warnings: number;
  };
  selector: Summary & { queries: number; limit: number; selectors: string[] };
  placement: Summary & { spokes: number; labelLoopP50Ms: number };
  telemetry: {
    spokes: number;
    intervalSeconds: number;
    reportsSent: number;
    meanReportBytes: number;
    hubCpuSecondsPerRound: number;
    hubCoreFraction: number;
    hubCpuSecondsPerRoundPer1000Spokes: number;
    postgresCpuSecondsPerRound: number | null;
  };
  simAgents: {
    connected: number;
    connectSeconds: number;
    rssPerSpokeBytes: number;
    heapPerSpokeBytes: number;
    envelopes: { received: number; applied: number; duplicate: number; rejected: number; rejectReasons: Record<string, number> };
    floorEchoes: number;
    publishErrors: number;
    disconnects: number;
    cpuSeconds: number;
  };
  phases: Phase[];
  /** The hub's fan-out window profile (--profile): file and top self time. */
  profile: string | null;
  profileTop: Array<{ fn: string; selfMs: number; share: number }> | null;
}

const ms = (x: number) => (x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${x.toFixed(x < 10 ? 1 : 0)} ms`);
const mib = (b: number | null) => (b === null ? 'n/a' : `${(b / 1024 / 1024).toFixed(0)} MiB`);
const kib = (b: number) => `${(b / 1024).toFixed(0)} KiB`;
const sec = (x: number | null) => (x === null ? 'n/a' : `${x.toFixed(2)} s`);

/** The targets of the scale issue; they are set for 10,000 spokes on Mosquitto, and shown for any run. */
export function targets(r: BenchResult): Array<{ figure: string; target: string; value: string; met: boolean | null }> {
  const GiB = 1024 ** 3;
  if (r.spokes >= 100_000) {
    // The 100,000-spoke targets (issue 18), embedded broker.
    const d = r.enrolment.deciles;
    return [
      { figure: 'apply -> all acknowledged p99', target: '<= 30 s', value: ms(r.convergence.p99Ms), met: r.convergence.p99Ms <= 30_000 },
      { figure: 'convergence p99 / floor p99', target: '<= 3x', value: `${r.ratio.toFixed(2)}x`, met: r.ratio <= 3 },
      { figure: 'enrolment rate', target: '>= 500 spokes/s', value: `${r.enrolment.perSecond.toFixed(0)} spokes/s`, met: r.enrolment.perSecond >= 500 },
      { figure: 'enrolment, last decile / first', target: '>= 0.90', value: d ? d.lastOverFirst.toFixed(2) : 'n/a', met: d ? d.lastOverFirst >= 0.9 : null },
      { figure: 'connect storm of the whole fleet', target: '<= 60 s', value: `${r.simAgents.connectSeconds.toFixed(1)} s`, met: r.simAgents.connectSeconds <= 60 },
      { figure: 'hub peak RSS', target: '<= 2 GiB', value: mib(r.hub.peakRssBytes), met: r.hub.peakRssBytes === null ? null : r.hub.peakRssBytes <= 2 * GiB },
      { figure: 'telemetry ingest every 30 s', target: '<= 50% of a core', value: `${(r.telemetry.hubCoreFraction * 100).toFixed(1)}%`, met: r.telemetry.hubCoreFraction <= 0.5 },
      { figure: 'GET /spokes?selector= p99', target: '<= 100 ms', value: ms(r.selector.p99Ms), met: r.selector.p99Ms <= 100 },
      { figure: `placement over ${r.spokes} spokes p99`, target: '<= 500 ms', value: ms(r.placement.p99Ms), met: r.placement.p99Ms <= 500 },
    ];
  }
  return [
    { figure: 'convergence p99', target: '<= 10 s', value: ms(r.convergence.p99Ms), met: r.convergence.p99Ms <= 10_000 },
    { figure: 'convergence p99 / floor p99', target: '<= 3x', value: `${r.ratio.toFixed(2)}x`, met: r.ratio <= 3 },
    { figure: 'hub peak RSS', target: '<= 1 GiB', value: mib(r.hub.peakRssBytes), met: r.hub.peakRssBytes === null ? null : r.hub.peakRssBytes <= GiB },
    { figure: 'GET /spokes?selector= p99', target: '<= 100 ms', value: ms(r.selector.p99Ms), met: r.selector.p99Ms <= 100 },
    { figure: `placement over ${r.spokes} spokes p99`, target: '<= 200 ms', value: ms(r.placement.p99Ms), met: r.placement.p99Ms <= 200 },
  ];
}

export function renderMarkdown(r: BenchResult): string {
  const m = r.machine;
  const lines: string[] = [];
  lines.push(`# Fleet benchmark: ${r.spokes} spokes, ${r.broker} broker`);
  lines.push('');
  lines.push(`${r.startedAt}, ${r.durationSeconds.toFixed(0)} s. Machine: ${m.cpus} cores (${m.cpuModel}), ${(m.memoryBytes / 1024 ** 3).toFixed(0)} GiB, Node ${m.node}, ${m.os}.`);
  lines.push(`Broker: ${m.broker}. Postgres: ${m.postgres}. Simulated agents: ${r.spokes} in ${m.simProcesses} process(es), apart from the hub.`);
  lines.push('');
  lines.push('| figure | p50 | p99 | max |');
  lines.push('|---|---|---|---|');
  lines.push(`| fan-out convergence (apply -> every ack in Postgres) | ${ms(r.convergence.p50Ms)} | ${ms(r.convergence.p99Ms)} | ${ms(r.convergence.maxMs)} |`);
  lines.push(`| of which: apply -> envelope at the agent | ${ms(r.convergenceDetail.envelopeDelivery.p50Ms)} | ${ms(r.convergenceDetail.envelopeDelivery.p99Ms)} | ${ms(r.convergenceDetail.envelopeDelivery.maxMs)} |`);
  lines.push(`| floor (same N messages + N echoes, same broker) | ${ms(r.floor.p50Ms)} | ${ms(r.floor.p99Ms)} | ${ms(r.floor.maxMs)} |`);
  lines.push(`| **ratio** (convergence p99 / floor p99) | | **${r.ratio.toFixed(2)}x** | |`);
  lines.push(`| GET /api/v1/spokes?selector= (limit ${r.selector.limit}, ${r.selector.queries} queries) | ${ms(r.selector.p50Ms)} | ${ms(r.selector.p99Ms)} | ${ms(r.selector.maxMs)} |`);
  lines.push(`| placement evaluation over ${r.placement.spokes} spokes (in process) | ${ms(r.placement.p50Ms)} | ${ms(r.placement.p99Ms)} | ${ms(r.placement.maxMs)} |`);
  lines.push(`| enrolment request (${r.enrolment.concurrency} concurrent) | ${ms(r.enrolment.latency.p50Ms)} | ${ms(r.enrolment.latency.p99Ms)} | ${ms(r.enrolment.latency.maxMs)} |`);
  lines.push('');
  lines.push('| figure | value |');
  lines.push('|---|---|');
  lines.push(`| enrolment rate | ${r.enrolment.perSecond.toFixed(0)} spokes/s (${r.enrolment.spokes} in ${r.enrolment.seconds.toFixed(1)} s) |`);
  if (r.enrolment.deciles) lines.push(`| enrolment rate by decile | ${decilesText(r.enrolment.deciles)} |`);
  if (r.renderedAfterEnrolSeconds !== undefined) lines.push(`| every enrolled spoke rendered, after the last enrolment answer | ${sec(r.renderedAfterEnrolSeconds)} |`);
  if (r.realAgent) {
    const a = r.realAgent;
    lines.push(`| real agent (\`flotilla agent run\`, ${a.runtime} runtime, idle, ${a.online ? 'online' : 'NOT online'}) | ${mib(a.rssBytes)} RSS after ${a.idleSeconds} s (peak ${mib(a.peakRssBytes)}), ${(a.idleCpuCoreFraction * 100).toFixed(2)}% of a core idle, ${sec(a.cpuSeconds)} CPU in all |`);
  } else if (r.realAgent === null) lines.push('| real agent | not measured (skipped or failed; see the log) |');
  lines.push(`| hub CPU, whole run | ${sec(r.hub.cpuSeconds)} (${sec(r.hub.cpuSecondsPer1000Spokes)} per 1,000 spokes) |`);
  lines.push(`| hub peak RSS | ${mib(r.hub.peakRssBytes)} (${mib(r.hub.peakRssBytesPer1000Spokes)} per 1,000 spokes) |`);
  lines.push(`| hub render + persist transaction during the fan-out | ${sec(r.convergenceDetail.hubRenderSeconds)} |`);
  lines.push(`| telemetry ingest, ${r.telemetry.spokes} spokes every ${r.telemetry.intervalSeconds} s | hub ${sec(r.telemetry.hubCpuSecondsPerRound)} CPU per round = ${(r.telemetry.hubCoreFraction * 100).toFixed(1)}% of a core (${sec(r.telemetry.hubCpuSecondsPerRoundPer1000Spokes)} per 1,000 spokes); Postgres ${sec(r.telemetry.postgresCpuSecondsPerRound)} |`);
  lines.push(`| simulated agent RSS | ${kib(r.simAgents.rssPerSpokeBytes)} per spoke (heap ${kib(r.simAgents.heapPerSpokeBytes)}) |`);
  lines.push(`| envelopes verified by the agents | ${r.simAgents.envelopes.applied} applied, ${r.simAgents.envelopes.duplicate} redeliveries, ${r.simAgents.envelopes.rejected} rejected |`);
  lines.push(`| mean envelope / status ack size | ${r.convergenceDetail.envelopeBytesMean.toFixed(0)} B / ${r.convergenceDetail.statusBytesMean.toFixed(0)} B |`);
  lines.push(`| agent disconnects, publish errors, hub warnings | ${r.simAgents.disconnects}, ${r.simAgents.publishErrors}, ${r.hub.warnings} |`);
  if (r.limits) lines.push(`| limits | ${limitsText(r.limits)} |`);
  if (r.load) lines.push(`| load average at the end (1, 5, 15 min) | ${r.load.map((x) => x.toFixed(2)).join(', ')} |`);
  lines.push('');
  lines.push('| phase | wall | hub CPU | Postgres CPU | broker CPU | simulated agents CPU |');
  lines.push('|---|---|---|---|---|---|');
  for (const p of r.phases) {
    lines.push(`| ${p.name} | ${sec(p.seconds)} | ${sec(p.hubCpuSeconds)} | ${sec(p.postgresCpuSeconds)} | ${p.brokerCpuSeconds === null ? (r.broker === 'embedded' ? 'in hub' : 'n/a') : sec(p.brokerCpuSeconds)} | ${sec(p.simCpuSeconds)} |`);
  }
  lines.push('');
  lines.push(
    r.spokes >= 100_000
      ? 'Targets (set for 100,000 spokes, embedded broker, on a 2-core machine):'
      : `Targets (set for 10,000 spokes with Mosquitto on a 2-core machine${r.spokes === 10_000 && r.broker === 'mosquitto' ? '' : '; this run is not that configuration'}):`,
  );
  lines.push('');
  lines.push('| target | value | |');
  lines.push('|---|---|---|');
  for (const t of targets(r)) lines.push(`| ${t.figure} ${t.target} | ${t.value} | ${t.met === null ? 'n/a' : t.met ? 'met' : 'MISSED'} |`);
  lines.push('');
  if (r.hubMemory) lines.push(...hubMemoryLines(r.hubMemory));
  if (r.profiles && Object.keys(r.profiles).length) {
    lines.push(`Hub CPU profiles per phase (beside this file): ${Object.entries(r.profiles).map(([p, f]) => `${p}: \`${f}\``).join(', ')}.`);
    lines.push('');
  }
  if (r.profileTop) {
    lines.push(`Hub CPU profile of the fan-out window (${r.profile}), self time:`);
    lines.push('');
    lines.push('| function | self | share |');
    lines.push('|---|---|---|');
    for (const t of r.profileTop) lines.push(`| \`${t.fn.replace(/\|/g, '\\|')}\` | ${t.selfMs.toFixed(0)} ms | ${(t.share * 100).toFixed(1)}% |`);
    lines.push('');
  }
  return lines.join('\n');
}

function decilesText(d: EnrolmentDeciles): string {
  return `${d.perSecond.map((x) => x.toFixed(0)).join(', ')} spokes/s; last/first ${d.lastOverFirst.toFixed(2)} (target >= 0.90: ${d.lastOverFirst >= 0.9 ? 'met' : 'MISSED'})`;
}

function limitsText(l: Limits): string {
  const files = l.nofile.map((f) => `${f.process} ${f.soft}/${f.hard} (wants ${f.wanted})${f.enough ? '' : ' NOT ENOUGH'}`).join('; ');
  return `open files soft/hard: ${files}; ephemeral ports ${l.ephemeralPorts ? `${l.ephemeralPorts.low}-${l.ephemeralPorts.high}` : 'n/a'}, ${l.sourceAddresses} loopback source address(es); somaxconn ${l.somaxconn ?? 'n/a'}`;
}

/** The table of a run that stopped early: what it measured, and why it stopped. */
export function renderPartialMarkdown(r: PartialBenchResult): string {
  const lines: string[] = [];
  lines.push(`# Fleet benchmark: ${r.spokes} spokes, ${r.broker} broker (stopped after ${r.stoppedAfter})`);
  lines.push('');
  lines.push(`${r.startedAt}, ${r.durationSeconds.toFixed(0)} s; load average at the end ${r.load.map((x) => x.toFixed(2)).join(', ')}.`);
  lines.push('');
  lines.push(`**Stopped:** ${r.why}.`);
  lines.push('');
  lines.push('| figure | value |');
  lines.push('|---|---|');
  lines.push(`| enrolment rate | ${r.enrolment.perSecond.toFixed(0)} spokes/s (${r.enrolment.spokes} in ${r.enrolment.seconds.toFixed(1)} s, ${r.enrolment.concurrency} concurrent) |`);
  if (r.enrolment.deciles) lines.push(`| enrolment rate by decile | ${decilesText(r.enrolment.deciles)} |`);
  lines.push(`| enrolment request p50 / p99 / max | ${ms(r.enrolment.latency.p50Ms)} / ${ms(r.enrolment.latency.p99Ms)} / ${ms(r.enrolment.latency.maxMs)} |`);
  lines.push(`| every enrolled spoke rendered, after the last enrolment answer | ${sec(r.renderedAfterEnrolSeconds)} |`);
  lines.push(`| placement evaluation over ${r.placement.spokes} spokes (in process) p50 / p99 | ${ms(r.placement.p50Ms)} / ${ms(r.placement.p99Ms)} |`);
  lines.push(`| hub peak RSS so far | ${mib(r.hub.peakRssBytes)} (${mib(r.hub.peakRssBytesPer1000Spokes)} per 1,000 spokes) |`);
  lines.push(`| limits | ${limitsText(r.limits)} |`);
  if (r.realAgent) {
    const a = r.realAgent;
    lines.push(`| real agent (\`flotilla agent run\`, ${a.runtime} runtime, idle, ${a.online ? 'online' : 'NOT online'}) | ${mib(a.rssBytes)} RSS after ${a.idleSeconds} s (peak ${mib(a.peakRssBytes)}), ${(a.idleCpuCoreFraction * 100).toFixed(2)}% of a core idle, ${sec(a.cpuSeconds)} CPU in all |`);
  }
  lines.push('');
  lines.push('| phase | wall | hub CPU | Postgres CPU | broker CPU | simulated agents CPU |');
  lines.push('|---|---|---|---|---|---|');
  for (const p of r.phases) lines.push(`| ${p.name} | ${sec(p.seconds)} | ${sec(p.hubCpuSeconds)} | ${sec(p.postgresCpuSeconds)} | ${p.brokerCpuSeconds === null ? (r.broker === 'embedded' ? 'in hub' : 'n/a') : sec(p.brokerCpuSeconds)} | ${sec(p.simCpuSeconds)} |`);
  lines.push('');
  if (r.hubMemory) lines.push(...hubMemoryLines(r.hubMemory));
  if (Object.keys(r.profiles).length) lines.push(`Hub CPU profiles per phase: ${Object.entries(r.profiles).map(([p, f]) => `${p}: \`${f}\``).join(', ')}.`);
  lines.push('');
  return lines.join('\n');
}

function hubMemoryLines(m: NonNullable<BenchResult['hubMemory']>): string[] {
  const u = m.usage;
  const lines = [
    `Hub memory after a GC with the fleet in place: RSS ${mib(u.rss)}, JS heap used ${mib(u.heapUsed)}, external ${mib(u.external)} (array buffers ${mib(u.arrayBuffers)}). Allocations since the hub started still live (sampled, \`${m.file}\`): ${mib(m.sampledLiveBytes)}, ${mib(m.sampledLiveBytesPer1000Spokes)} per 1,000 spokes; by allocating function:`,
    '',
    '| function | live | share |',
    '|---|---|---|',
  ];
  for (const t of m.top.slice(0, 15)) lines.push(`| \`${t.fn.replace(/\|/g, '\\|')}\` | ${mib(t.bytes)} | ${(t.share * 100).toFixed(1)}% |`);
  lines.push('');
  return lines;
}
