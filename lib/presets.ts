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

/**
 * How a profile key is spelled: `<runtime>/<size>/base-<base>`, an image base named by the first `digestChars` hex
 * digits of the digest in its stored ref. The catalog's SQL form (catalog/restore.ts) is built from these parts.
 */
export const PROFILE_KEY = { separator: '/', base: 'base-', refDigest: '@sha256:', digestChars: 12 } as const;

/** The first 12 hex digits of an image digest (`sha256:…`) or of a stored ref's digest (`registry/repo@sha256:…`). */
export function digest12(digestOrRef: string): string {
  const { refDigest, digestChars } = PROFILE_KEY;
  return (digestOrRef.split(refDigest)[1] ?? digestOrRef.replace(/^sha256:/, '')).slice(0, digestChars);
}

/**
 * Runtime + size + base decides compatibility for resume and golden selection. The built-in base is named by its
 * version (`codex/small/base-1`); an image snapshot base by its stored digest (`codex/small/base-3f2a9c0d1e4b`), so a
 * new image means a new profile.
 */
export function profileKey(input: { runtime: Runtime; size: string; baseVersion?: string; baseDigest?: string }): string {
  const base = input.baseDigest ? digest12(input.baseDigest) : (input.baseVersion ?? BASE_IMAGE.tag);
  const { separator, base: mark } = PROFILE_KEY;
  return [input.runtime, input.size, `${mark}${base}`].join(separator);
}

/** `codex/small/base-1` → `{ prefix: 'codex/small', base: '1' }`: two keys that differ only in `base` differ by their base. */
export function splitProfileKey(key: string): { prefix: string; base: string } {
  const mark = `${PROFILE_KEY.separator}${PROFILE_KEY.base}`;
  const at = key.lastIndexOf(mark);
  return at < 0 ? { prefix: key, base: '' } : { prefix: key.slice(0, at), base: key.slice(at + mark.length) };
}
