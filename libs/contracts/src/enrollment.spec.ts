import { EnrollRequestSchema, EnrollResponseSchema, LabelsSchema } from './enrollment.js';

describe('enrolment shapes', () => {
  it('accepts a request with labels and facts, and refuses unknown fields', () => {
    expect(EnrollRequestSchema.safeParse({ token: 't', name: 'site-17', labels: { region: 'eu', 'gpu.product': 'L40S' } }).success).toBe(true);
    expect(EnrollRequestSchema.safeParse({ token: 't', name: 'site-17', admin: true }).success).toBe(false);
  });

  it.each([{ 'bad key!': 'x' }, { region: 'not valid value' }, { '': 'x' }, { region: 'x'.repeat(64) }])(
    'refuses the labels %j',
    (labels) => {
      expect(LabelsSchema.safeParse(labels).success).toBe(false);
    },
  );

  it('accepts a response with extra fields and defaults missing labels to {}', () => {
    const parsed = EnrollResponseSchema.parse({
      spoke: { name: 'site-17' },
      mqtt: { url: 'mqtt://hub:1883', clientId: 'spoke-site-17', username: 'site-17', password: 'p' },
      hubPublicKey: '-----BEGIN PUBLIC KEY-----\nMCo=\n-----END PUBLIC KEY-----\n',
      more: 'welcome',
    });
    expect(parsed.spoke.labels).toEqual({});
  });

  it('refuses a response whose MQTT URL is not an MQTT URL', () => {
    const result = EnrollResponseSchema.safeParse({
      spoke: { name: 'site-17', labels: {} },
      mqtt: { url: 'http://hub', clientId: 'c', username: 'u', password: 'p' },
      hubPublicKey: '-----BEGIN PUBLIC KEY-----',
    });
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]?.path).toEqual(['mqtt', 'url']);
  });
});
