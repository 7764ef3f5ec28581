import {
  HUB_FILTERS,
  HUB_SHARED_FILTERS,
  hubFilter,
  hubSharedFilter,
  mayPublish,
  maySubscribe,
  parseSpokeTopic,
  spokeTopic,
  spokeTopics,
  statusTopic,
} from './topics.js';

describe('topic builders', () => {
  it('builds every channel topic of a spoke under flotilla/v1/spokes', () => {
    expect(spokeTopics('site-17')).toEqual({
      desired: 'flotilla/v1/spokes/site-17/desired',
      commands: 'flotilla/v1/spokes/site-17/commands',
      status: 'flotilla/v1/spokes/site-17/status',
      telemetry: 'flotilla/v1/spokes/site-17/telemetry',
      events: 'flotilla/v1/spokes/site-17/events',
      presence: 'flotilla/v1/spokes/site-17/presence',
    });
    expect(statusTopic('a')).toBe('flotilla/v1/spokes/a/status');
  });

  it.each(['', '+', '#', 'Site', 'a/b', '-a', 'x'.repeat(64)])('refuses to build a topic for the invalid spoke name %j', (name) => {
    expect(() => spokeTopic(name, 'status')).toThrow(/not a valid spoke name/);
  });

  it('gives the hub plain and $share/flotilla-hub filters for the agent -> hub channels only', () => {
    expect(hubFilter('status')).toBe('flotilla/v1/spokes/+/status');
    expect(hubSharedFilter('telemetry')).toBe('$share/flotilla-hub/flotilla/v1/spokes/+/telemetry');
    expect([...HUB_FILTERS].sort()).toEqual([
      'flotilla/v1/spokes/+/events',
      'flotilla/v1/spokes/+/presence',
      'flotilla/v1/spokes/+/status',
      'flotilla/v1/spokes/+/telemetry',
    ]);
    expect(HUB_SHARED_FILTERS.every((f) => f.startsWith('$share/flotilla-hub/flotilla/v1/spokes/+/'))).toBe(true);
  });
});

describe('parseSpokeTopic', () => {
  it('round-trips every built topic', () => {
    for (const [channel, topic] of Object.entries(spokeTopics('edge-1'))) {
      expect(parseSpokeTopic(topic)).toEqual({ spoke: 'edge-1', channel });
    }
  });

  it.each([
    'flotilla/v1/spokes/site-17',
    'flotilla/v1/spokes/site-17/status/extra',
    'flotilla/v1/spokes/site-17/unknown',
    'flotilla/v1/spokes/+/status',
    'flotilla/v1/spokes/#',
    'flotilla/v1/spokes//status',
    'flotilla/v2/spokes/site-17/status',
    '/flotilla/v1/spokes/site-17/status',
    'flotilla/v1/spokes/Site-17/status',
    '$share/flotilla-hub/flotilla/v1/spokes/site-17/status',
    '',
  ])('returns null for %j', (topic) => {
    expect(parseSpokeTopic(topic)).toBeNull();
  });
});

describe('spoke ACL', () => {
  it('lets a spoke publish only to its own status, telemetry, events and presence', () => {
    for (const channel of ['status', 'telemetry', 'events', 'presence'] as const) {
      expect(mayPublish('site-17', spokeTopic('site-17', channel))).toBe(true);
      expect(mayPublish('site-17', spokeTopic('site-18', channel))).toBe(false);
    }
    expect(mayPublish('site-17', spokeTopic('site-17', 'desired'))).toBe(false);
    expect(mayPublish('site-17', spokeTopic('site-17', 'commands'))).toBe(false);
  });

  it('refuses publishing to wildcards, other trees and malformed topics', () => {
    for (const topic of ['flotilla/v1/spokes/+/status', 'flotilla/v1/spokes/site-17/#', 'other/topic', '$SYS/x', '']) {
      expect(mayPublish('site-17', topic)).toBe(false);
    }
  });

  it('lets a spoke subscribe only to its own desired and commands, spelled out', () => {
    expect(maySubscribe('site-17', 'flotilla/v1/spokes/site-17/desired')).toBe(true);
    expect(maySubscribe('site-17', 'flotilla/v1/spokes/site-17/commands')).toBe(true);
    expect(maySubscribe('site-17', 'flotilla/v1/spokes/site-17/status')).toBe(false);
    expect(maySubscribe('site-17', 'flotilla/v1/spokes/site-18/desired')).toBe(false);
  });

  it.each([
    '#',
    '+/+/+/+/+',
    'flotilla/v1/spokes/+/desired',
    'flotilla/v1/spokes/site-17/+',
    'flotilla/v1/spokes/site-17/#',
    'flotilla/#',
    '$share/g/flotilla/v1/spokes/site-17/desired',
    '$SYS/#',
    'flotilla/v1/spokes/site-17/desired/#',
  ])('refuses the subscription filter %j for a spoke', (filter) => {
    expect(maySubscribe('site-17', filter)).toBe(false);
  });

  it('refuses everything for an invalid spoke name, even a wildcard one', () => {
    expect(maySubscribe('+', 'flotilla/v1/spokes/+/desired')).toBe(false);
    expect(mayPublish('#', 'flotilla/v1/spokes/#')).toBe(false);
    expect(mayPublish('', 'flotilla/v1/spokes//status')).toBe(false);
  });
});
