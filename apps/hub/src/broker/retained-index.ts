import { createRequire } from 'node:module';
import { Readable } from 'node:stream';

/**
 * aedes' in-memory persistence answers every SUBSCRIBE by testing the filter
 * against every retained message (aedes-persistence 11, `retainedMessagesByPattern`).
 * The hub keeps two retained messages per spoke (desired state, presence), so
 * a fleet reconnecting after a broker restart cost O(spokes^2): 3,000 spokes
 * spent 13 s of the hub's CPU in that scan (profile in the scale benchmark).
 * Spokes may subscribe only to literal topics (contracts' maySubscribe), so
 * this persistence looks those up in the map directly and scans only for
 * wildcard filters (the hub's own, a few per start).
 */

const require = createRequire(import.meta.url);

interface RetainedPacket {
  topic: string;
  payload: Buffer;
  [k: string]: unknown;
}

type MemoryPersistenceClass = new (opts?: object) => {
  storeRetained(pkt: RetainedPacket): Promise<void>;
  createRetainedStream(pattern: string): Readable;
  createRetainedStreamCombi(patterns: string[]): Readable;
};
type CallBackPersistenceClass = new (factory: (opts: object) => object, opts?: object) => object;

const MemoryPersistence = require('aedes-persistence/asyncPersistence.js') as MemoryPersistenceClass;
const { CallBackPersistence } = require('aedes-persistence/callBackPersistence.js') as { CallBackPersistence: CallBackPersistenceClass };

/** MQTT 3.1.1 section 4.7 filter matching, including `$` topics never matching a leading wildcard. */
export function topicMatchesFilter(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    const level = f[i];
    if (level === '#') return true;
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}

const isWildcard = (filter: string) => filter.includes('+') || filter.includes('#');

class IndexedRetainedPersistence extends MemoryPersistence {
  readonly #retained = new Map<string, RetainedPacket>();

  override async storeRetained(pkt: RetainedPacket): Promise<void> {
    // A copy, as aedes-persistence stores it; an empty payload clears the topic. The payload is copied
    // into a buffer of its own: a small Buffer is a slice of a shared 8 KiB pool slab, and one retained
    // envelope per spoke kept whole slabs alive (100,000 spokes: 314 MiB of array buffers, 3 KiB a spoke).
    const packet = { ...pkt };
    if (Buffer.isBuffer(packet.payload) && packet.payload.length > 0 && packet.payload.buffer.byteLength > packet.payload.length) {
      const own = Buffer.allocUnsafeSlow(packet.payload.length);
      packet.payload.copy(own);
      packet.payload = own;
    }
    if (packet.payload.length === 0) this.#retained.delete(packet.topic);
    else this.#retained.set(packet.topic, packet);
  }

  override createRetainedStream(pattern: string): Readable {
    return Readable.from(this.#matching([pattern]));
  }

  override createRetainedStreamCombi(patterns: string[]): Readable {
    return Readable.from(this.#matching(patterns));
  }

  *#matching(patterns: string[]): Generator<RetainedPacket> {
    for (const pattern of patterns) {
      if (!isWildcard(pattern)) {
        const hit = this.#retained.get(pattern);
        if (hit) yield hit;
        continue;
      }
      for (const [topic, packet] of this.#retained) if (topicMatchesFilter(pattern, topic)) yield packet;
    }
  }
}

/** An aedes persistence: aedes-persistence's memory one, with retained messages indexed by topic. */
export function indexedRetainedPersistence(): object {
  return new CallBackPersistence((opts) => new IndexedRetainedPersistence(opts));
}
