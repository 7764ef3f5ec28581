import { BoundedQueue } from './bounded-queue.js';

describe('BoundedQueue', () => {
  it('keeps items in order and drains them all', () => {
    const q = new BoundedQueue<number>(3);
    q.push(1);
    q.push(2);
    expect(q.size).toBe(2);
    expect(q.drain()).toEqual([1, 2]);
    expect(q.size).toBe(0);
  });

  it('drops the oldest item when full and counts every drop', () => {
    const q = new BoundedQueue<number>(2);
    for (const n of [1, 2, 3, 4]) q.push(n);
    expect(q.drain()).toEqual([3, 4]);
    expect(q.dropped).toBe(2);
  });

  it('puts a returned item back at the head unless that would overflow, then counts it as dropped', () => {
    const q = new BoundedQueue<string>(2);
    q.push('b');
    q.unshift('a');
    expect(q.drain()).toEqual(['a', 'b']);
    q.push('x');
    q.push('y');
    q.unshift('old');
    expect(q.drain()).toEqual(['x', 'y']);
    expect(q.dropped).toBe(1);
  });

  it.each([0, -1, 1.5, Number.NaN])('rejects the capacity %p', (capacity) => {
    expect(() => new BoundedQueue(capacity)).toThrow(/positive integer/);
  });
});
