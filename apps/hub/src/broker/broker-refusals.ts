import type { GuardRefusal } from './mqtt-packet-guard.js';

/** Why the embedded broker cut a connection or refused a message (the label of flotilla_hub_mqtt_refused_total). */
export const BROKER_REFUSALS = [
  'PacketTooLarge',
  'ConnectTooLarge',
  'NotConnect',
  'MalformedLength',
  'ConnectTimeout',
  'TooManyPending',
  'PublishTooLarge',
  'PublishNotAllowed',
  'SubscribeNotAllowed',
  'BadCredentials',
] as const satisfies readonly string[];
export type BrokerRefusal = (typeof BROKER_REFUSALS)[number];

// Fails to compile when the guard gains a refusal this list lacks.
const _everyGuardRefusal: [Exclude<GuardRefusal, BrokerRefusal>] extends [never] ? true : never = true;
void _everyGuardRefusal;
