import fc from 'fast-check';
import { bestRoutes, compareRoutes, greatCircleKm, parseLatLon } from './routing.js';

describe('routing', () => {
  it('measures great-circle distances (Paris to Lyon about 392 km, antipodes half the circumference)', () => {
    expect(greatCircleKm({ lat: 48.8566, lon: 2.3522 }, { lat: 45.764, lon: 4.8357 })).toBeCloseTo(392, -1);
    expect(greatCircleKm({ lat: 0, lon: 0 }, { lat: 0, lon: 180 })).toBeCloseTo(Math.PI * 6371.0088, 3);
    expect(greatCircleKm({ lat: 10, lon: -170 }, { lat: 10, lon: -170 })).toBe(0);
  });

  it('reads LAT,LON and says what is wrong otherwise', () => {
    expect(parseLatLon('48.85, 2.35')).toEqual({ lat: 48.85, lon: 2.35 });
    expect(parseLatLon('-33.9,-151.2')).toEqual({ lat: -33.9, lon: -151.2 });
    expect(parseLatLon('91,0')).toMatch(/lat must be between -90 and 90/);
    expect(parseLatLon('0,181')).toMatch(/lon must be between -180 and 180/);
    expect(parseLatLon('paris')).toMatch(/is not LAT,LON/);
    expect(parseLatLon('1,2,3')).toMatch(/is not LAT,LON/);
  });

  it('ranks by distance, spokes without one last, then load, then p99', () => {
    const items = [
      { spoke: 'far', distanceKm: 900, load: 0, latencyP99Ms: 1 },
      { spoke: 'nowhere', distanceKm: null, load: 0, latencyP99Ms: 1 },
      { spoke: 'near-busy', distanceKm: 10, load: 5, latencyP99Ms: 1 },
      { spoke: 'near-idle-slow', distanceKm: 10, load: 1, latencyP99Ms: 50 },
      { spoke: 'near-idle-fast', distanceKm: 10, load: 1, latencyP99Ms: 5 },
    ];
    expect(bestRoutes(items, 10).map((i) => i.spoke)).toEqual(['near-idle-fast', 'near-idle-slow', 'near-busy', 'far', 'nowhere']);
  });

  it('keeps the best `limit` in the order a full sort gives', () => {
    const item = fc.record({
      spoke: fc.string({ maxLength: 4 }),
      distanceKm: fc.option(fc.integer({ min: 0, max: 50 }), { nil: null }),
      load: fc.integer({ min: 0, max: 5 }),
      latencyP99Ms: fc.option(fc.integer({ min: 0, max: 5 }), { nil: null }),
    });
    fc.assert(
      fc.property(fc.array(item, { maxLength: 60 }), fc.integer({ min: 1, max: 20 }), (items, limit) => {
        const expected = [...items].sort(compareRoutes).slice(0, limit);
        expect(bestRoutes(items, limit).map((i) => compareRoutes(i, expected[bestRoutes(items, limit).indexOf(i)]!))).toEqual(expected.map(() => 0));
      }),
    );
  });
});
