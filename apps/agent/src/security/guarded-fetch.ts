import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import tls from 'node:tls';
import { Readable } from 'node:stream';
import type { SourcePolicy } from './source-policy.js';

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

/**
 * A fetch for artifacts whose connections go only to addresses the source
 * policy allows: the address checked is the one connected to (through the
 * socket's `lookup`), so a name that resolves to a public address for the
 * check and to 127.0.0.1 a moment later (DNS rebinding) is still refused.
 * Redirects are not followed here: the caller checks each hop and asks again.
 */
export function guardedFetch(policy: SourcePolicy, trustedOriginCa?: string): FetchLike {
  // The CA pinned at enrolment, beside the system's, for the agent's own hub (a hub with a generated CA).
  const ca = trustedOriginCa ? [...tls.rootCertificates, trustedOriginCa] : undefined;
  return (input, init) =>
    new Promise<Response>((resolve, reject) => {
      const url = new URL(input);
      const client = url.protocol === 'https:' ? https : url.protocol === 'http:' ? http : null;
      if (!client) {
        reject(new TypeError(`${url.protocol} is not http(s)`));
        return;
      }
      const lookup: LookupFunction = (hostname, options, callback) => {
        dnsLookup(hostname, { all: true, verbatim: true, ...(options.family ? { family: options.family } : {}) }, (err, addresses: LookupAddress[]) => {
          if (err) return callback(err, '', 0);
          try {
            for (const a of addresses) policy.checkAddress(a.address, url.host, input);
          } catch (refused) {
            return callback(refused as NodeJS.ErrnoException, '', 0);
          }
          if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
          const first = addresses[0];
          if (!first) return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), '', 0);
          return callback(null, first.address, first.family);
        });
      };
      const headers = Object.fromEntries(new Headers(init.headers).entries());
      const req = client.request(url, {
        method: init.method ?? 'GET',
        headers,
        ...(init.signal ? { signal: init.signal } : {}),
        ...(policy.isTrustedOrigin(url.origin) ? (ca && url.protocol === 'https:' ? { ca } : {}) : { lookup }),
      });
      req.once('error', reject);
      req.once('response', (res) => {
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) {
          if (v === undefined) continue;
          for (const one of Array.isArray(v) ? v : [v]) h.append(k, one);
        }
        const status = res.statusCode ?? 0;
        const nullBody = status === 204 || status === 304 || init.method === 'HEAD';
        if (nullBody) res.resume();
        try {
          resolve(new Response(nullBody ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), { status, statusText: res.statusMessage ?? '', headers: h }));
        } catch (err) {
          res.destroy();
          reject(err as Error);
        }
      });
      req.end();
    });
}
