// A first-in, first-out queue with a fixed capacity. What does not fit is refused (and counted by
// the caller): the rows already waiting keep their place, so the batch in flight at the head
// never moves.

export class BoundedQueue<T> {
  private items: T[] = [];
  private head = 0;

  constructor(readonly capacity: number) {}

  get length(): number {
    return this.items.length - this.head;
  }

  /** Appends as many as fit, in order; returns how many did not. */
  push(items: readonly T[]): number {
    const room = Math.max(0, this.capacity - this.length);
    const taken = Math.min(room, items.length);
    for (let i = 0; i < taken; i++) this.items.push(items[i]!);
    return items.length - taken;
  }

  /** The first n (or fewer), left in place. */
  peek(n: number): T[] {
    return this.items.slice(this.head, this.head + n);
  }

  /** Removes the first n. */
  shift(n: number): void {
    this.head = Math.min(this.items.length, this.head + n);
    // compact now and then rather than at every shift
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }

  /** Removes and returns everything. */
  drain(): T[] {
    const out = this.items.slice(this.head);
    this.items = [];
    this.head = 0;
    return out;
  }
}
