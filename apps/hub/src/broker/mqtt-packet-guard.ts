import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';

/** Why a guard cut a connection. */
export type GuardRefusal = 'PacketTooLarge' | 'ConnectTooLarge' | 'NotConnect' | 'MalformedLength' | 'ConnectTimeout';

export interface PacketGuardLimits {
  /** Largest remaining length of any packet (bytes after the fixed header). */
  maxPacketBytes: number;
  /** Largest remaining length of the first packet, the CONNECT (credentials and a small will). */
  maxConnectBytes: number;
  /** Time from the TCP accept until the broker has accepted the CONNECT. */
  connectTimeoutMs: number;
}

const CONNECT = 1;

/**
 * Sits between a TCP socket and aedes, which (like mqtt-packet, its parser)
 * has no packet size limit: it reads the fixed header of every packet as the
 * bytes arrive and destroys the socket as soon as a declared remaining length
 * is over the limit, before the body is read, so a peer announcing 250 MiB
 * costs nothing. Until the broker has authenticated the client (`accept()`),
 * only the first packet is passed on and it must be a small CONNECT; anything
 * pipelined behind it waits here, with the socket paused, so an
 * unauthenticated peer can make the broker hold at most one read chunk.
 *
 * Writes go straight to the socket (with its backpressure); the guard keeps
 * no other state than where it is in the current packet.
 */
export class MqttPacketGuard extends Duplex {
  private accepted = false;
  private packets = 0;
  /** 0: at a fixed header; 1: in the remaining length; 2: in a body. */
  private state: 0 | 1 | 2 = 0;
  private lengthBytes = 0;
  private multiplier = 1;
  private length = 0;
  private bodyLeft = 0;
  private held: Buffer[] = [];
  private readonly timer: NodeJS.Timeout;
  private refusal: GuardRefusal | null = null;

  constructor(
    readonly socket: Socket,
    private readonly limits: PacketGuardLimits,
    private readonly onRefuse: (reason: GuardRefusal, detail: string) => void,
  ) {
    super({ allowHalfOpen: false });
    this.timer = setTimeout(() => this.refuse('ConnectTimeout', `no accepted CONNECT within ${limits.connectTimeoutMs} ms`), limits.connectTimeoutMs);
    this.timer.unref();
    socket.on('data', (chunk: Buffer) => this.inspect(chunk));
    socket.on('end', () => this.push(null));
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => this.destroy());
    socket.on('drain', () => this.emit('socketDrain'));
  }

  /** The broker accepted the CONNECT: lift the pre-authentication hold. */
  accept(): void {
    if (this.accepted || this.destroyed) return;
    this.accepted = true;
    clearTimeout(this.timer);
    const held = this.held;
    this.held = [];
    for (const chunk of held) this.inspect(chunk);
    if (!this.destroyed) this.socket.resume();
  }

  private inspect(chunk: Buffer): void {
    if (this.destroyed) return;
    let i = 0;
    let holdFrom = -1;
    while (i < chunk.length) {
      if (this.state === 2) {
        const take = Math.min(this.bodyLeft, chunk.length - i);
        this.bodyLeft -= take;
        i += take;
        if (this.bodyLeft === 0) this.endPacket();
        continue;
      }
      if (!this.accepted && this.packets >= 1) {
        // A packet behind the CONNECT, before the broker accepted it: keep it here.
        holdFrom = i;
        break;
      }
      const byte = chunk[i++]!;
      if (this.state === 0) {
        if (this.packets === 0 && byte >> 4 !== CONNECT) return this.refuse('NotConnect', `first packet has type ${byte >> 4}, not CONNECT`);
        this.state = 1;
        this.lengthBytes = 0;
        this.multiplier = 1;
        this.length = 0;
        continue;
      }
      this.length += (byte & 0x7f) * this.multiplier;
      this.multiplier *= 128;
      this.lengthBytes++;
      const max = this.packets === 0 ? this.limits.maxConnectBytes : this.limits.maxPacketBytes;
      // The length only grows with each byte, so it is refused as soon as it passes the limit.
      if (this.length > max) {
        const reason = this.packets === 0 ? 'ConnectTooLarge' : 'PacketTooLarge';
        return this.refuse(reason, `packet announces at least ${this.length} bytes, over the limit of ${max}`);
      }
      if (byte & 0x80) {
        if (this.lengthBytes === 4) return this.refuse('MalformedLength', 'remaining length longer than 4 bytes');
        continue;
      }
      this.bodyLeft = this.length;
      this.state = 2;
      if (this.bodyLeft === 0) this.endPacket();
    }
    if (holdFrom >= 0) {
      this.held.push(chunk.subarray(holdFrom));
      this.socket.pause();
    }
    const passed = holdFrom >= 0 ? chunk.subarray(0, holdFrom) : chunk;
    if (passed.length > 0 && !this.push(passed)) this.socket.pause();
  }

  private endPacket(): void {
    this.packets++;
    this.state = 0;
  }

  private refuse(reason: GuardRefusal, detail: string): void {
    if (this.refusal || this.destroyed) return;
    this.refusal = reason;
    this.onRefuse(reason, detail);
    this.socket.destroy();
    this.destroy();
  }

  override _read(): void {
    if (this.accepted || this.packets === 0) this.socket.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.socket.write(chunk)) cb();
    else this.once('socketDrain', () => cb());
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    this.socket.cork();
    let ok = true;
    for (const { chunk } of chunks) ok = this.socket.write(chunk) && ok;
    this.socket.uncork();
    if (ok) cb();
    else this.once('socketDrain', () => cb());
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.socket.end(() => cb());
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    clearTimeout(this.timer);
    this.held = [];
    if (!this.socket.destroyed) this.socket.destroy();
    this.emit('socketDrain');
    cb(err);
  }
}
