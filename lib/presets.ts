// Size presets are data; the catalog seeds the same rows (db/migrations) and references them by key.
export const RUNTIMES = ['codex', 'pi'] as const;
export type Runtime = (typeof RUNTIMES)[number];

export interface SizePreset {
  key: string;
  vcpus: number;
  memoryMiB: number;
}

export const SIZE_PRESETS: readonly SizePreset[] = [
  { key: 'small', vcpus: 1, memoryMiB: 2048 },
  { key: 'medium', vcpus: 2, memoryMiB: 4096 },
  { key: 'large', vcpus: 4, memoryMiB: 8192 },
];

export function findPreset(key: string): SizePreset | undefined {
  return SIZE_PRESETS.find((p) => p.key === key);
}

/** The base image version every profile key is built against; bump it when the base changes. */
export const BASE_IMAGE = { repository: 'snapflow/base', tag: '1' } as const;
export const BASE_IMAGE_REF = `${BASE_IMAGE.repository}:${BASE_IMAGE.tag}`;

/** Runtime + size + base version decides compatibility for resume and golden selection. */
export function profileKey(input: { runtime: Runtime; size: string; baseVersion?: string }): string {
  return `${input.runtime}/${input.size}/base-${input.baseVersion ?? BASE_IMAGE.tag}`;
}
