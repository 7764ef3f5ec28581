import { ConfigError, loadConfig } from './config.js';

describe('FLOTILLA_TRUST_PROXY', () => {
  it('trusts no proxy by default, takes addresses, CIDRs and named ranges, and names every bad entry', () => {
    expect(loadConfig({}, '/tmp', false).trustProxy).toEqual([]);
    expect(loadConfig({ FLOTILLA_TRUST_PROXY: 'loopback, 10.0.0.0/8,2001:db8::1' }, '/tmp', false).trustProxy).toEqual(['loopback', '10.0.0.0/8', '2001:db8::1']);
    expect(() => loadConfig({ FLOTILLA_TRUST_PROXY: 'proxy.example.com,10.0.0.0/33' }, '/tmp', false)).toThrow(ConfigError);
    expect(() => loadConfig({ FLOTILLA_TRUST_PROXY: 'proxy.example.com,10.0.0.0/33' }, '/tmp', false)).toThrow(
      'FLOTILLA_TRUST_PROXY: proxy.example.com, 10.0.0.0/33 is not an address, a CIDR or one of loopback, linklocal, uniquelocal',
    );
  });
});
