// Size presets are data; the catalog seeds the same rows (db/migrations) and references them by key.
export const RUNTIMES = ['codex', 'pi'] as const;
export type Runtime = (typeof RUNTIMES)[number];

export interface SizePreset {
  key: string;
  vcpus: number;
  memoryMiB: number;
  /** A vm sandbox's root disk: the image's files and what its jobs write. */
  diskMiB: number;
}

export const SIZE_PRESETS: readonly SizePreset[] = [
  { key: 'small', vcpus: 1, memoryMiB: 2048, diskMiB: 10240 },
  { key: 'medium', vcpus: 2, memoryMiB: 4096, diskMiB: 20480 },
  { key: 'large', vcpus: 4, memoryMiB: 8192, diskMiB: 40960 },
];

export function findPreset(key: string): SizePreset | undefined {
  return SIZE_PRESETS.find((p) => p.key === key);
}

/** The base image version every profile key is built against; bump it when the base changes. */
export const BASE_IMAGE = { repository: 'snapflow/base', tag: '1' } as const;
export const BASE_IMAGE_REF = `${BASE_IMAGE.repository}:${BASE_IMAGE.tag}`;

/** The first 12 hex digits of an image digest (`sha256:…`) or of a stored ref's digest (`registry/repo@sha256:…`). */
export function digest12(digestOrRef: string): string {
  return (digestOrRef.split('@sha256:')[1] ?? digestOrRef.replace(/^sha256:/, '')).slice(0, 12);
}

/**
 * Runtime + size + base decides compatibility for resume and golden selection. The built-in base is named by its
 * version (`codex/small/base-1`); an image snapshot base by its stored digest (`codex/small/base-3f2a9c0d1e4b`), so a
 * new image means a new profile.
 */
export function profileKey(input: { runtime: Runtime; size: string; baseVersion?: string; baseDigest?: string }): string {
  const base = input.baseDigest ? digest12(input.baseDigest) : (input.baseVersion ?? BASE_IMAGE.tag);
  return `${input.runtime}/${input.size}/base-${base}`;
}

/** `codex/small/base-1` → `{ prefix: 'codex/small', base: '1' }`: two keys that differ only in `base` differ by their base. */
export function splitProfileKey(key: string): { prefix: string; base: string } {
  const at = key.lastIndexOf('/base-');
  return at < 0 ? { prefix: key, base: '' } : { prefix: key.slice(0, at), base: key.slice(at + '/base-'.length) };
}
