/** The one retry-delay policy of roomhub (protocol/backoff.py): the n-th delay since the last
 * `reset()` (n = 0, 1, 2 …) is uniform in `[0, min(cap, base * 2**n))` (full jitter), or exactly
 * `min(cap, base * 2**n)` with `jitter: false`. Seconds, as in Python. */
export class ExponentialBackoff {
  failures = 0;

  constructor(
    readonly base = 0.1,
    readonly cap = 5.0,
    readonly jitter = true,
    readonly random: () => number = Math.random,
  ) {
    if (!(base > 0) || !(cap >= base)) {
      throw new RangeError(`backoff needs 0 < base <= cap, got base=${base}, cap=${cap}`);
    }
  }

  ceiling(failures: number): number {
    return Math.min(this.cap, this.base * 2 ** Math.min(failures, 64));
  }

  nextDelay(): number {
    const ceiling = this.ceiling(this.failures);
    this.failures += 1;
    return this.jitter ? this.random() * ceiling : ceiling;
  }

  reset(): void {
    this.failures = 0;
  }
}
