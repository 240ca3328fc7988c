// What pre-warming host caches after a golden build is given and reports (workflows/hostCache.ts).

export interface CachedSnapshot {
  snapshotId: string;
  size: string;
  /** A saved vm machine: only its builder holds it (other hosts fetch it on first restore), not the image warmed here. */
  machineProfile?: string;
}

export interface HostCacheOutcome {
  /** Hosts that now hold the image, the builder first. */
  cachedOn: string[];
  /** Hosts that serve the size but could not pull it; they pull on first use instead. */
  warmFailed: Array<{ hostId: string; reason: string }>;
  evicted: Array<{ hostId: string; storedRef: string }>;
}
