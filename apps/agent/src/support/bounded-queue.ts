/**
 * FIFO with a fixed capacity that drops its oldest item when full, counting
 * what it dropped: reports queued while offline must not grow without bound,
 * and the newest ones are the most useful.
 */
export class BoundedQueue<T> {
  private items: T[] = [];
  private droppedCount = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`BoundedQueue capacity must be a positive integer, got ${capacity}`);
    }
  }

  get size(): number {
    return this.items.length;
  }

  /** Items dropped to make room since the queue was created. */
  get dropped(): number {
    return this.droppedCount;
  }

  push(item: T): void {
    this.items.push(item);
    if (this.items.length > this.capacity) {
      this.items.shift();
      this.droppedCount += 1;
    }
  }

  /** Puts an item back at the head (after a failed send), still within capacity. */
  unshift(item: T): void {
    if (this.items.length >= this.capacity) {
      this.droppedCount += 1; // the item being returned is the oldest: it is the one to go
      return;
    }
    this.items.unshift(item);
  }

  /** Removes and returns everything, oldest first. */
  drain(): T[] {
    const out = this.items;
    this.items = [];
    return out;
  }
}
