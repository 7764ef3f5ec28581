import { type ConfigError, loadConfig } from './config.js';

const base = { FLOTILLA_HOME: '/tmp/x' };
const problems = (env: Record<string, string>): string[] => {
  try {
    loadConfig(env, '/', false);
    return [];
  } catch (err) {
    return (err as ConfigError).problems;
  }
};

describe('hub configuration for replicas and http broker auth', () => {
  test('http auth needs the hook secret and the hub broker login; everything wrong is named at once', () => {
    const p = problems({ ...base, MQTT_URL: 'mqtt://broker:1883', FLOTILLA_BROKER_AUTH: 'http' });
    expect(p.join('\n')).toContain('FLOTILLA_BROKER_HOOK_SECRET');
    expect(p.join('\n')).toContain('FLOTILLA_MQTT_USERNAME and FLOTILLA_MQTT_PASSWORD');
    expect(problems({ ...base, MQTT_URL: 'mqtt://b', FLOTILLA_BROKER_AUTH: 'http', FLOTILLA_BROKER_HOOK_SECRET: 'short' }).join('\n')).toContain('at least 24');
  });

  test('a complete http configuration, with a list of broker nodes and RabbitMQ ingest over AMQP', () => {
    const c = loadConfig(
      {
        ...base,
        MQTT_URL: 'mqtt://n1:1883, mqtt://n2:1883',
        FLOTILLA_BROKER_AUTH: 'http',
        FLOTILLA_BROKER_KIND: 'rabbitmq',
        FLOTILLA_AMQP_URL: 'amqp://n1,amqp://n2',
        FLOTILLA_BROKER_HOOK_SECRET: 'a'.repeat(32),
        FLOTILLA_MQTT_USERNAME: 'flotilla-hub',
        FLOTILLA_MQTT_PASSWORD: 'pw',
        FLOTILLA_HUB_ID: 'hub-1',
      },
      '/',
      false,
    );
    expect(c).toMatchObject({ mqttUrl: 'mqtt://n1:1883,mqtt://n2:1883', brokerKind: 'rabbitmq', amqpUrl: 'amqp://n1,amqp://n2', hubId: 'hub-1', brokerHook: { host: '127.0.0.1', port: 8081 } });
  });

  test('RabbitMQ needs an AMQP URL; a list with a bad member is refused', () => {
    expect(problems({ ...base, MQTT_URL: 'mqtt://b', FLOTILLA_BROKER_AUTH: 'http', FLOTILLA_BROKER_KIND: 'rabbitmq', FLOTILLA_BROKER_HOOK_SECRET: 'a'.repeat(32), FLOTILLA_MQTT_USERNAME: 'u', FLOTILLA_MQTT_PASSWORD: 'p' })).toEqual([
      'FLOTILLA_BROKER_KIND=rabbitmq needs FLOTILLA_AMQP_URL (hubs share agent messages through one queue read over AMQP)',
    ]);
    expect(problems({ ...base, MQTT_URL: 'mqtt://a,http://b' }).join('\n')).toContain('MQTT_URL must use');
  });
});

describe('hub configuration of the artifact store', () => {
  test('defaults to $FLOTILLA_HOME/artifacts-store and 8 GiB; a directory or an S3 bucket and prefix otherwise; bad values named', () => {
    const d = loadConfig(base, '/', false);
    expect(d.artifactStore).toEqual({ kind: 'filesystem', directory: '/tmp/x/artifacts-store' });
    expect(d.artifactMaxBytes).toBe(8 * 1024 ** 3);
    expect(loadConfig({ ...base, FLOTILLA_ARTIFACT_STORE: '/srv/models' }, '/', false).artifactStore).toEqual({ kind: 'filesystem', directory: '/srv/models' });
    expect(loadConfig({ ...base, FLOTILLA_ARTIFACT_STORE: 's3://models-bucket/flotilla/artifacts/', FLOTILLA_ARTIFACT_S3_ENDPOINT: 'http://minio:9000' }, '/', false).artifactStore).toEqual({
      kind: 's3',
      bucket: 'models-bucket',
      prefix: 'flotilla/artifacts',
      endpoint: 'http://minio:9000',
    });
    const p = problems({ ...base, FLOTILLA_ARTIFACT_STORE: 'relative/dir', FLOTILLA_ARTIFACT_MAX_BYTES: 'lots' }).join('\n');
    expect(p).toContain('FLOTILLA_ARTIFACT_STORE must be s3://bucket[/prefix] or an absolute directory');
    expect(p).toContain('FLOTILLA_ARTIFACT_MAX_BYTES="lots" must be a whole number of bytes');
  });
});
