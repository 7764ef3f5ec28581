import { execFile } from 'node:child_process';
import { MIB, migProfileMemoryBytes, type GpuDevice, type GpuInventory, type GpuSource, type MigDevice } from './gpu.js';

/** The fields asked of `nvidia-smi --query-gpu`, in this order. */
export const QUERY_FIELDS = [
  'index',
  'name',
  'uuid',
  'memory.total',
  'memory.used',
  'utilization.gpu',
  'temperature.gpu',
  'power.draw',
] as const;

export const QUERY_ARGS = [`--query-gpu=${QUERY_FIELDS.join(',')}`, '--format=csv,noheader,nounits'];
export const LIST_ARGS = ['-L'];

const DRIVER_FAILURE = /NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver/i;
const NO_DEVICES = /^No devices were found\s*$/im;
/** Values nvidia-smi prints for readings a device does not have: null, not an error. */
const ABSENT = new Set(['[N/A]', 'N/A', '[Not Supported]', 'Not Supported']);

/** Recognizes nvidia-smi's whole-output failures, shared by both commands. */
function outputFailure(text: string): string | null {
  if (DRIVER_FAILURE.test(text)) {
    const first = text.trim().split('\n')[0]?.trim() ?? '';
    return `nvidia-smi: driver not loaded: ${first}`;
  }
  return null;
}

/**
 * Parses `nvidia-smi --query-gpu=<QUERY_FIELDS> --format=csv,noheader,nounits`.
 * Pure: text in, GPUs and errors out. A malformed line is reported and
 * skipped; the others still count.
 */
export function parseGpuQuery(text: string): GpuInventory {
  const failure = outputFailure(text);
  if (failure) return { gpus: [], errors: [failure] };
  if (NO_DEVICES.test(text)) return { gpus: [], errors: [] };

  const gpus: GpuDevice[] = [];
  const errors: string[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    const where = `nvidia-smi query line ${i + 1}`;
    const fields = line.split(',').map((f) => f.trim());
    if (fields.length !== QUERY_FIELDS.length) {
      errors.push(`${where}: expected ${QUERY_FIELDS.length} fields, got ${fields.length}: "${clip(line)}"`);
      return;
    }
    const [index, name, uuid, memTotal, memUsed, util, temp, power] = fields as [string, string, string, string, string, string, string, string];
    if (!/^\d+$/.test(index) || name === '' || uuid === '' || ABSENT.has(uuid)) {
      errors.push(`${where}: bad index, name or uuid: "${clip(line)}"`);
      return;
    }
    const problems: string[] = [];
    const num = (field: string, value: string): number | null => {
      if (ABSENT.has(value)) return null;
      const n = /^-?\d+(\.\d+)?$/.test(value) ? Number(value) : Number.NaN;
      if (Number.isNaN(n)) {
        // e.g. "[Unknown Error]", "[GPU is lost]": worth telling, and unknown.
        problems.push(`${field}=${value}`);
        return null;
      }
      return n;
    };
    const memoryTotalMiB = num('memory.total', memTotal);
    const memoryUsedMiB = num('memory.used', memUsed);
    const utilPercent = num('utilization.gpu', util);
    const gpu: GpuDevice = {
      index: Number(index),
      uuid,
      product: name,
      memoryTotalBytes: memoryTotalMiB === null ? null : memoryTotalMiB * MIB,
      memoryUsedBytes: memoryUsedMiB === null ? null : memoryUsedMiB * MIB,
      utilisation: utilPercent === null ? null : Math.min(1, Math.max(0, utilPercent / 100)),
      temperatureC: num('temperature.gpu', temp),
      powerW: num('power.draw', power),
      migDevices: [],
    };
    if (problems.length > 0) errors.push(`nvidia-smi GPU ${gpu.index} (${uuid}): unreadable ${problems.join(', ')}`);
    gpus.push(gpu);
  });
  return { gpus, errors };
}

export interface ListedGpu {
  index: number;
  product: string;
  uuid: string;
  migDevices: MigDevice[];
}

/**
 * Parses `nvidia-smi -L`: `GPU 0: NAME (UUID: GPU-...)` lines, each followed
 * by its `  MIG 1g.10gb     Device  0: (UUID: MIG-...)` lines when MIG is on.
 * Older drivers print MIG UUIDs as `MIG-GPU-<uuid>/<gi>/<ci>`; both parse.
 */
export function parseGpuList(text: string): { gpus: ListedGpu[]; errors: string[] } {
  const failure = outputFailure(text);
  if (failure) return { gpus: [], errors: [failure] };
  if (NO_DEVICES.test(text)) return { gpus: [], errors: [] };

  const gpus: ListedGpu[] = [];
  const errors: string[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    const gpu = /^GPU (\d+): (.+?) \(UUID: ([^)\s]+)\)$/.exec(line);
    if (gpu) {
      gpus.push({ index: Number(gpu[1]), product: gpu[2] ?? '', uuid: gpu[3] ?? '', migDevices: [] });
      return;
    }
    const mig = /^MIG (\S+)\s+Device\s+(\d+): \(UUID: ([^)\s]+)\)$/.exec(line);
    if (mig) {
      const parent = gpus.at(-1);
      if (!parent) {
        errors.push(`nvidia-smi -L line ${i + 1}: MIG device before any GPU: "${clip(line)}"`);
        return;
      }
      const profile = mig[1] ?? '';
      parent.migDevices.push({
        parentIndex: parent.index,
        parentUuid: parent.uuid,
        deviceIndex: Number(mig[2]),
        uuid: mig[3] ?? '',
        profile,
        memoryTotalBytes: migProfileMemoryBytes(profile),
      });
      return;
    }
    errors.push(`nvidia-smi -L line ${i + 1}: unrecognized: "${clip(line)}"`);
  });
  return { gpus, errors };
}

/**
 * Joins the two outputs: readings from the query, MIG instances from the
 * list (matched by UUID, else index). A GPU only the list knows is kept with
 * unknown readings, since placement still needs to know it is there.
 */
export function mergeGpuOutputs(query: GpuInventory, list: { gpus: ListedGpu[]; errors: string[] }): GpuInventory {
  const gpus = query.gpus.map((g) => ({ ...g, migDevices: [...g.migDevices] }));
  for (const listed of list.gpus) {
    const match = gpus.find((g) => g.uuid === listed.uuid) ?? gpus.find((g) => g.index === listed.index);
    if (match) {
      match.migDevices = listed.migDevices.map((m) => ({ ...m, parentIndex: match.index, parentUuid: match.uuid }));
    } else {
      gpus.push({
        index: listed.index,
        uuid: listed.uuid,
        product: listed.product,
        memoryTotalBytes: null,
        memoryUsedBytes: null,
        utilisation: null,
        temperatureC: null,
        powerW: null,
        migDevices: listed.migDevices,
      });
    }
  }
  gpus.sort((a, b) => a.index - b.index);
  // Both commands fail the same way when the driver is gone: say it once.
  const errors = [...new Set([...query.errors, ...list.errors])];
  return { gpus, errors };
}

export interface CommandOutput {
  stdout: string;
  stderr: string;
  /** Exit code; null when the process could not run or was killed. */
  code: number | null;
  /** Why it could not run or finish (ENOENT, timeout, abort). */
  error: string | null;
}

export type CommandRunner = (binary: string, args: readonly string[], opts: { timeoutMs: number; signal: AbortSignal }) => Promise<CommandOutput>;

/** Runs a command without a shell; never rejects, so a broken tool becomes a reported error. */
export const runCommand: CommandRunner = (binary, args, { timeoutMs, signal }) =>
  new Promise((resolve) => {
    execFile(
      binary,
      [...args],
      { timeout: timeoutMs, signal, maxBuffer: 4 * MIB, encoding: 'utf8', killSignal: 'SIGKILL', windowsHide: true },
      (err, stdout, stderr) => {
        if (!err) {
          resolve({ stdout, stderr, code: 0, error: null });
          return;
        }
        const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: string | number };
        let reason: string | null = null;
        if (e.code === 'ENOENT') reason = `${binary} not found`;
        else if (e.code === 'EACCES') reason = `${binary} is not executable`;
        else if (e.name === 'AbortError' || signal.aborted) reason = 'aborted';
        else if (e.killed) reason = `timed out after ${timeoutMs} ms`;
        else if (typeof e.code !== 'number') reason = e.message;
        resolve({ stdout: stdout ?? '', stderr: stderr ?? '', code: typeof e.code === 'number' ? e.code : null, error: reason });
      },
    );
  });

export interface NvidiaSmiOptions {
  /** Path or name of the binary (looked up on PATH). */
  binary?: string;
  timeoutMs?: number;
  run?: CommandRunner;
}

/** Reads GPUs and MIG instances by running nvidia-smi twice (query and `-L`). */
export class NvidiaSmiSource implements GpuSource {
  private readonly binary: string;
  private readonly timeoutMs: number;
  private readonly run: CommandRunner;

  constructor(opts: NvidiaSmiOptions = {}) {
    this.binary = opts.binary ?? 'nvidia-smi';
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.run = opts.run ?? runCommand;
  }

  async read(signal: AbortSignal): Promise<GpuInventory> {
    const query = await this.run(this.binary, QUERY_ARGS, { timeoutMs: this.timeoutMs, signal });
    const queried = interpret(query, parseGpuQuery, 'query');
    // No GPU (or no driver, or no binary): there are no MIG instances to list either.
    if (queried.gpus.length === 0) return queried;
    const list = await this.run(this.binary, LIST_ARGS, { timeoutMs: this.timeoutMs, signal });
    return mergeGpuOutputs(queried, interpret(list, parseGpuList, '-L'));
  }
}

function interpret<T extends { errors: string[] }>(out: CommandOutput, parse: (text: string) => T, what: string): T {
  if (out.error) return { ...parse(''), errors: [`nvidia-smi ${what}: ${out.error}`] };
  if (out.code === 0) return parse(out.stdout);
  const text = `${out.stdout}\n${out.stderr}`.trim();
  // Exit 9 (driver) and 6 (no devices) print messages the parsers know.
  if (DRIVER_FAILURE.test(text) || NO_DEVICES.test(text)) return parse(text);
  return { ...parse(''), errors: [`nvidia-smi ${what} exited with ${out.code}: ${clip(text)}`] };
}

function clip(s: string, max = 160): string {
  return s.length <= max ? s : `${s.slice(0, max)}...`;
}
