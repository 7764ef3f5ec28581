import { SpokeEjector } from './spoke-ejector.js';

describe('SpokeEjector (circuit breaking per spoke)', () => {
  it('passes a failing spoke over for a while, longer while it keeps failing, and restores it on success', () => {
    let now = 0;
    const e = new SpokeEjector(1_000, () => now);
    e.failed('lyon');
    expect(e.ejected('lyon')).toBe(true);
    now = 1_001;
    expect(e.ejected('lyon')).toBe(false);
    e.failed('lyon'); // second failure in a row: 2 s
    now = 2_500;
    expect(e.ejected('lyon')).toBe(true);
    now = 3_002;
    expect(e.ejectedSpokes()).toEqual([]);
    for (let i = 0; i < 10; i++) e.failed('lyon'); // capped at 8x
    expect(e.ejected('lyon')).toBe(true);
    now += 8_001;
    expect(e.ejected('lyon')).toBe(false);
    e.succeeded('lyon');
    e.failed('lyon'); // back to the first step after a success
    now += 1_001;
    expect(e.ejected('lyon')).toBe(false);
    expect(e.ejected('paris')).toBe(false);
  });
});
