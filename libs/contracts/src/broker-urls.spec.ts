import { mqttConnectTarget, splitBrokerUrls } from './broker-urls.js';

describe('broker URL lists', () => {
  test('one URL is passed through as is', () => {
    expect(mqttConnectTarget('mqtt://broker:1883')).toEqual({ url: 'mqtt://broker:1883' });
  });

  test('several become the first URL and a servers list mqtt.js rotates through', () => {
    expect(mqttConnectTarget(' mqtt://a:1883, mqtts://b ,')).toEqual({
      url: 'mqtt://a:1883',
      servers: [
        { host: 'a', port: 1883, protocol: 'mqtt' },
        { host: 'b', port: 8883, protocol: 'mqtts' },
      ],
    });
    expect(splitBrokerUrls('mqtt://a:1,,mqtt://b:2')).toEqual(['mqtt://a:1', 'mqtt://b:2']);
  });

  test('an empty list is an error', () => {
    expect(() => mqttConnectTarget(' , ')).toThrow('no broker URL');
  });
});
