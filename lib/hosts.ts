// What a host's Docker engine reports about itself: the host worker describes it, the catalog records it.

export interface HostFacts {
  hostId: string;
  dockerHost: string;
  dockerVersion: string;
  /** Capacity offered to sandboxes (the engine's memory, or SNAPFLOW_HOST_MEMORY_MIB when set lower). */
  memoryTotalMiB: number;
  /** Memory limits of snapflow's running containers on this host right now. */
  memoryReservedMiB: number;
  cpus: number;
  baseImagePresent: boolean;
  /** vm sandboxes on this host: the accel the probe chose (and why), and the machine profile per size. */
  vm?: { accel: string; detail: string; profiles: Record<string, string> } | { unavailable: string; profiles?: undefined };
}
