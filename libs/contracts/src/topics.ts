import { SpokeNameSchema } from './messages.js';

/**
 * MQTT topic names of the hub <-> agent protocol (DESIGN.md section 6) and the
 * access rule a broker applies to a spoke's credentials. Everything that builds
 * or checks a topic goes through here so the layout lives in one place.
 */

export const TOPIC_ROOT = 'flotilla/v1/spokes' as const;
/** Shared-subscription group of the hub replicas. */
export const HUB_SHARE_GROUP = 'flotilla-hub' as const;

export const SPOKE_CHANNELS = ['desired', 'commands', 'status', 'telemetry', 'events', 'presence'] as const;
export type SpokeChannel = (typeof SPOKE_CHANNELS)[number];

/** Hub -> agent channels: the only ones a spoke may subscribe to (its own). */
export const SPOKE_SUBSCRIBE_CHANNELS = ['desired', 'commands'] as const satisfies readonly SpokeChannel[];
/** Agent -> hub channels: the only ones a spoke may publish to (its own). */
export const SPOKE_PUBLISH_CHANNELS = ['status', 'telemetry', 'events', 'presence'] as const satisfies readonly SpokeChannel[];
export type HubInboundChannel = (typeof SPOKE_PUBLISH_CHANNELS)[number];

export function isSpokeChannel(value: string): value is SpokeChannel {
  return (SPOKE_CHANNELS as readonly string[]).includes(value);
}

function isSpokeName(value: string): boolean {
  return SpokeNameSchema.safeParse(value).success;
}

/** `flotilla/v1/spokes/S/CHANNEL`; throws on a spoke name that is not a DNS label (a programming error). */
export function spokeTopic(spoke: string, channel: SpokeChannel): string {
  if (!isSpokeName(spoke)) {
    throw new Error(`spokeTopic: "${spoke}" is not a valid spoke name (DNS label)`);
  }
  return `${TOPIC_ROOT}/${spoke}/${channel}`;
}

export const desiredTopic = (spoke: string): string => spokeTopic(spoke, 'desired');
export const commandsTopic = (spoke: string): string => spokeTopic(spoke, 'commands');
export const statusTopic = (spoke: string): string => spokeTopic(spoke, 'status');
export const telemetryTopic = (spoke: string): string => spokeTopic(spoke, 'telemetry');
export const eventsTopic = (spoke: string): string => spokeTopic(spoke, 'events');
export const presenceTopic = (spoke: string): string => spokeTopic(spoke, 'presence');

/** Every topic of one spoke, by channel. */
export function spokeTopics(spoke: string): Record<SpokeChannel, string> {
  return Object.fromEntries(SPOKE_CHANNELS.map((c) => [c, spokeTopic(spoke, c)])) as Record<SpokeChannel, string>;
}

export interface ParsedSpokeTopic {
  spoke: string;
  channel: SpokeChannel;
}

/**
 * Parses a concrete topic name (not a filter). Returns null for anything that
 * is not exactly `flotilla/v1/spokes/<dns label>/<known channel>`, so wildcards,
 * extra levels, empty levels and unknown channels never match.
 */
export function parseSpokeTopic(topic: string): ParsedSpokeTopic | null {
  if (typeof topic !== 'string' || !topic.startsWith(`${TOPIC_ROOT}/`)) return null;
  const rest = topic.slice(TOPIC_ROOT.length + 1).split('/');
  if (rest.length !== 2) return null;
  const [spoke, channel] = rest as [string, string];
  if (!isSpokeName(spoke) || !isSpokeChannel(channel)) return null;
  return { spoke, channel };
}

/** Plain filter the hub subscribes with to one agent -> hub channel of every spoke. */
export function hubFilter(channel: HubInboundChannel): string {
  return `${TOPIC_ROOT}/+/${channel}`;
}

/** Shared-subscription filter (`$share/flotilla-hub/...`) so hub replicas split the stream. */
export function hubSharedFilter(channel: HubInboundChannel): string {
  return `$share/${HUB_SHARE_GROUP}/${hubFilter(channel)}`;
}

export const HUB_FILTERS: readonly string[] = SPOKE_PUBLISH_CHANNELS.map(hubFilter);
export const HUB_SHARED_FILTERS: readonly string[] = SPOKE_PUBLISH_CHANNELS.map(hubSharedFilter);

/**
 * ACL rule for a spoke's credentials: it may publish only to its own status,
 * telemetry, events and presence topics. Wildcards are impossible here since
 * they never parse as a spoke name or channel.
 */
export function mayPublish(spoke: string, topic: string): boolean {
  if (!isSpokeName(spoke)) return false;
  const parsed = parseSpokeTopic(topic);
  return (
    parsed !== null &&
    parsed.spoke === spoke &&
    (SPOKE_PUBLISH_CHANNELS as readonly string[]).includes(parsed.channel)
  );
}

/**
 * ACL rule for a spoke's subscriptions: only its own desired and commands
 * topics, spelled out. Any wildcard (`+`, `#`), shared subscription
 * (`$share/...`) or other `$` topic is refused outright, because a filter that
 * matches one's own topic through a wildcard could also match another spoke's.
 */
export function maySubscribe(spoke: string, filter: string): boolean {
  if (!isSpokeName(spoke) || typeof filter !== 'string') return false;
  if (filter.includes('+') || filter.includes('#') || filter.startsWith('$')) return false;
  const parsed = parseSpokeTopic(filter);
  return (
    parsed !== null &&
    parsed.spoke === spoke &&
    (SPOKE_SUBSCRIBE_CHANNELS as readonly string[]).includes(parsed.channel)
  );
}
