import { DomainError } from '../errors/domain-error.js';
import { checkOwnershipFlags, ownershipConflict, overrideDetails } from './ownership.js';

const statusOf = (fn: () => void): number | null => {
  try {
    fn();
    return null;
  } catch (err) {
    return err instanceof DomainError ? err.status : -1;
  }
};

describe('git ownership at the API boundary', () => {
  it('keeps force for admins and git:NAME sources for the syncer unless forced', () => {
    expect(statusOf(() => checkOwnershipFlags({ force: false, source: undefined, role: 'operator' }))).toBeNull();
    expect(statusOf(() => checkOwnershipFlags({ force: false, source: 'api:ci', role: 'operator' }))).toBeNull();
    expect(statusOf(() => checkOwnershipFlags({ force: false, source: 'git:pol', role: 'operator' }))).toBe(403);
    expect(statusOf(() => checkOwnershipFlags({ force: false, source: 'git:pol', role: 'admin' }))).toBe(403);
    expect(statusOf(() => checkOwnershipFlags({ force: true, source: 'git:pol', role: 'operator' }))).toBe(403);
    expect(statusOf(() => checkOwnershipFlags({ force: true, source: 'git:pol', role: 'admin' }))).toBeNull();
  });

  it('records a forced write, and whose object it overrode', () => {
    expect(overrideDetails(false, 'git:pol', 'api:admin')).toEqual({});
    expect(overrideDetails(true, 'git:pol', 'api:admin')).toEqual({ force: true, overrodeOwner: 'git:pol' });
    expect(overrideDetails(true, 'git:pol', 'git:pol')).toEqual({ force: true });
    expect(overrideDetails(true, 'api:x', 'api:admin')).toEqual({ force: true });
  });

  it('names at most ten objects in the conflict message and all of them in the details', () => {
    const objects = Array.from({ length: 12 }, (_, i) => ({ kind: 'Placement', name: `p${i}`, owner: 'git:pol' }));
    const err = ownershipConflict(objects, 'change');
    expect(err.status).toBe(409);
    expect(err.message).toContain('Placement/p9 (owned by git:pol) and 2 more');
    expect(err.details.objects).toHaveLength(12);
  });
});
