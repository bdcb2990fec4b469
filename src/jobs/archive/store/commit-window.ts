/**
 * Requests that make messages durable, a bounded number in flight at once.
 * A blob commit is one round trip to the service: awaited one after another,
 * every message waits for the one before it, and the round trip, not the
 * bytes, sets the pace. Started here, they overlap; `drain` is the point
 * where all of them are durable (before any manifest line names them), and
 * the first failure is thrown there, or at the next `start`, so that a run
 * whose commits fail stops soon instead of uploading on. A failure stays: a
 * message whose commit failed may already have its manifest line waiting,
 * so no later `drain` may let that line be written.
 */
export class CommitWindow {
  private readonly inFlight = new Set<Promise<void>>();
  private failure: { error: unknown } | undefined;

  constructor(private readonly limit: number) {}

  /** Starts `commit` once fewer than `limit` are in flight; resolves when it has started. */
  async start(commit: () => Promise<unknown>): Promise<void> {
    this.throwFailure();
    while (this.inFlight.size >= this.limit) {
      await Promise.race(this.inFlight);
      this.throwFailure();
    }
    const task: Promise<void> = commit().then(
      () => {
        this.inFlight.delete(task);
      },
      (error: unknown) => {
        this.inFlight.delete(task);
        this.failure ??= { error };
      },
    );
    this.inFlight.add(task);
  }

  /** Resolves once every commit started so far has finished; throws the first failure. */
  async drain(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all(this.inFlight);
    this.throwFailure();
  }

  private throwFailure(): void {
    if (this.failure) throw this.failure.error;
  }
}
