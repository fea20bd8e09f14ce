import type { ApiKey, Store } from "../store/store.js";

export interface KeyCacheOptions {
  store: Store;
  /** A revoked, rotated or expired key is refused within this long of the change, on every instance. */
  ttlMs: number;
  /** Most keys held (unknown ids included); the oldest entries go first. */
  maxKeys?: number;
  /** Told of a failed poll or last-used write; the cache keeps serving what it knows to be fresh. */
  onError?(error: unknown, what: string): void;
}

export interface KeyCache {
  /**
   * The key with this id, or undefined when there is none: from memory, synchronously, while
   * what the cache knows of it is younger than the TTL, else a promise of the store's answer
   * (one read however many callers wait).
   */
  get(id: string): ApiKey | undefined | Promise<ApiKey | undefined>;
  /** Notes a use; `last_used_at` is written at most once a minute per key, in batches, off the call path. */
  used(id: string, at: Date): void;
  /** Stops polling and writes the pending last-used times. */
  close(): Promise<void>;
}

interface Entry {
  key: ApiKey | undefined;
  /** Epoch ms as of which the entry is known to be current. */
  knownAt: number;
}

const TOUCH_INTERVAL_MS = 60_000;
const PAGE = 1000;

/**
 * Verified keys kept in memory. Every TTL/2 one query asks the store for the keys changed since
 * the last version seen, and refreshes the entries it holds, so a cache hit costs no database
 * round trip. An entry whose freshness is older than the TTL (polls failing) is read again,
 * and a read that started before a fresher entry arrived is never written back over it.
 */
export function createKeyCache({ store, ttlMs, maxKeys = 100_000, onError = () => {} }: KeyCacheOptions): KeyCache {
  const entries = new Map<string, Entry>();
  const reading = new Map<string, Promise<ApiKey | undefined>>();
  const lastTouched = new Map<string, number>();
  let pendingTouches = new Map<string, Date>();
  let version: number | undefined;
  let polling: Promise<void> | undefined;

  async function pollOnce(): Promise<void> {
    const startedAt = Date.now();
    let seen = version ?? 0;
    for (;;) {
      const changes = await store.keyChangesSince(seen, PAGE);
      // The first poll only learns where the store stands: the cache is empty then.
      if (version !== undefined) {
        for (const key of changes.keys) if (entries.has(key.id)) entries.set(key.id, { key, knownAt: startedAt });
      }
      seen = changes.version;
      if (changes.keys.length < PAGE) break;
    }
    version = seen;
    for (const entry of entries.values()) if (entry.knownAt < startedAt) entry.knownAt = startedAt;
  }
  const poll = () => {
    polling ??= pollOnce()
      .catch((error: unknown) => onError(error, "key changes poll"))
      .finally(() => (polling = undefined));
  };
  poll();
  const poller = setInterval(poll, Math.max(1, Math.floor(ttlMs / 2)));
  poller.unref();
  const flusher = setInterval(() => void flushTouches(), TOUCH_INTERVAL_MS);
  flusher.unref();

  async function flushTouches(): Promise<void> {
    if (pendingTouches.size === 0) return;
    const batch = pendingTouches;
    pendingTouches = new Map();
    await store.touchKeys(batch).catch((error: unknown) => onError(error, "last-used write"));
  }

  function read(id: string): Promise<ApiKey | undefined> {
    let pending = reading.get(id);
    if (pending !== undefined) return pending;
    const startedAt = Date.now();
    pending = store.getKey(id).then(
      (key) => {
        reading.delete(id);
        const current = entries.get(id);
        if (current === undefined || current.knownAt < startedAt) remember(id, { key, knownAt: startedAt });
        return key;
      },
      (error: unknown) => {
        reading.delete(id);
        throw error;
      },
    );
    reading.set(id, pending);
    return pending;
  }

  function remember(id: string, entry: Entry): void {
    entries.delete(id);
    entries.set(id, entry);
    if (entries.size > maxKeys) entries.delete(entries.keys().next().value!);
  }

  return {
    get(id) {
      const entry = entries.get(id);
      if (entry !== undefined && Date.now() - entry.knownAt < ttlMs) return entry.key;
      return read(id);
    },
    used(id, at) {
      const last = lastTouched.get(id);
      if (last !== undefined && at.getTime() - last < TOUCH_INTERVAL_MS) return;
      lastTouched.set(id, at.getTime());
      if (lastTouched.size > maxKeys) lastTouched.delete(lastTouched.keys().next().value!);
      pendingTouches.set(id, at);
    },
    async close() {
      clearInterval(poller);
      clearInterval(flusher);
      await polling;
      await flushTouches();
    },
  };
}
