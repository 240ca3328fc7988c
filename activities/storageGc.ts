// Storage garbage collection: the registry's own `garbage-collect`, run on the host that holds the registry's config
// and storage directory, with what it would free (or freed) measured from that directory.
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { liveStoredSnapshots } from '../catalog/retirement';
import type { Db } from '../db/client';
import type { StorageConfig } from '../lib/config';
import { SnapflowError } from '../lib/errors';
import { boundary } from './boundary';
import { withHeartbeat } from './heartbeats';
import { missingBlobs } from './registryClient';

export interface StorageGcDeps {
  db?: Db;
  /** Snapshot storage, for checking afterwards that every live snapshot still has all its blobs. */
  storage?: StorageConfig;
  /** SNAPFLOW_REGISTRY_CONFIG: the storage registry's config.yml; unset → gc is refused, saying how to enable it. */
  registryConfig?: string;
  /** The Distribution binary (Debian's `docker-registry`). */
  registryBinary?: string;
}

export interface StorageGcResult {
  dryRun: boolean;
  /** Blobs no manifest references: would be freed (dry run) or were freed. */
  blobs: number;
  bytes: number;
  /** Manifests still stored, as the registry counted them while marking. */
  manifests: number;
  /** Bytes of every file under the storage directory, before and after (equal on a dry run). */
  storageBytesBefore: number;
  storageBytesAfter: number;
}

/** What `garbage-collect` printed: the eligible blobs and the manifests it marked. */
export function parseGcOutput(out: string): { eligible: string[]; manifests: number } {
  const eligible = [...out.matchAll(/^blob eligible for deletion: (sha256:[0-9a-f]{64})$/gm)].map((m) => m[1]!);
  const manifests = new Set([...out.matchAll(/: marking manifest (sha256:[0-9a-f]{64})/g)].map((m) => m[1]!)).size;
  return { eligible, manifests };
}

/**
 * The filesystem root of a Distribution config: `storage.filesystem.rootdirectory` (or the registry's own
 * environment override). Only the filesystem driver keeps blobs where a host can measure them.
 */
export function storageRoot(configText: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const fromEnv = env.REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY;
  if (fromEnv) return fromEnv;
  const m = /rootdirectory:\s*["']?([^"'\s,}]+)/.exec(configText);
  return m?.[1];
}

/** Bytes of every regular file under `dir` (no links followed): what the storage really holds. */
export function treeBytes(dir: string): number {
  let total = 0;
  const stack = [dir];
  while (stack.length) {
    const here = stack.pop()!;
    let entries: string[];
    try {
      entries = readdirSync(here);
    } catch {
      continue; // removed by a concurrent sweep
    }
    for (const name of entries) {
      const path = join(here, name);
      try {
        const st = lstatSync(path);
        if (st.isDirectory()) stack.push(path);
        else if (st.isFile()) total += st.size;
      } catch {
        // gone between readdir and stat
      }
    }
  }
  return total;
}

function blobBytes(root: string, digest: string): number {
  const hex = digest.slice('sha256:'.length);
  try {
    return lstatSync(join(root, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data')).size;
  } catch {
    return 0;
  }
}

function runGc(binary: string, config: string, dryRun: boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    // Never --delete-untagged: a manifest whose tag moved on can still be named by digest in the catalog.
    const child = spawn(binary, ['garbage-collect', config, ...(dryRun ? ['--dry-run'] : [])], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (err = (err + d.toString('utf8')).slice(-4000)));
    child.on('error', (e) => reject(new SnapflowError({ code: 'STORAGE_UNAVAILABLE', message: `cannot run ${binary}: ${e.message}` })));
    child.on('close', (code) => {
      if (code === 0) return resolve(out);
      // Retryable: a registry mid-write can make a walk fail; the activity's policy tries again.
      reject(new Error(`${binary} garbage-collect exited ${code}: ${(err || out).trim().slice(-1000)}`));
    });
  });
}

export function createStorageGcActivities(deps: StorageGcDeps) {
  const binary = deps.registryBinary ?? 'docker-registry';
  return {
    /**
     * Dry run: what `garbage-collect` would remove, in blobs and bytes. Otherwise it removes them. Safe to run twice:
     * a second run finds nothing more to free. Blobs uploaded but not yet named by a manifest are collected too; their
     * upload's manifest PUT then fails (blob unknown) and the upload's retry sends them again.
     */
    async collectStorageGarbage(input: { dryRun: boolean }): Promise<StorageGcResult> {
      const { config, root } = await boundary(async () => {
        const config = deps.registryConfig;
        if (!config) {
          throw new SnapflowError({
            code: 'STORAGE_GC_NOT_CONFIGURED',
            message: 'storage gc needs the storage registry config on the control worker, and SNAPFLOW_REGISTRY_CONFIG is not set',
            hint: "set SNAPFLOW_REGISTRY_CONFIG to the registry's config.yml on the control worker's host (the dev stack's is .data/registry/config.yml)",
          });
        }
        if (!existsSync(config)) {
          throw new SnapflowError({
            code: 'STORAGE_GC_NOT_CONFIGURED',
            message: `SNAPFLOW_REGISTRY_CONFIG names ${config}, which this control worker cannot read`,
            hint: 'run the control worker on the host that runs the registry, or mount its config and storage there',
          });
        }
        const root = storageRoot(readFileSync(config, 'utf8'));
        if (!root) {
          throw new SnapflowError({
            code: 'STORAGE_GC_NOT_CONFIGURED',
            message: `${config} has no storage.filesystem.rootdirectory: storage gc measures and collects a filesystem registry`,
            hint: 'for other storage drivers run `registry garbage-collect` where the registry runs',
          });
        }
        return { config, root };
      });
      const before = treeBytes(root);
      // A registry that never stored anything has no repositories folder, and garbage-collect fails on it.
      if (!existsSync(join(root, 'docker/registry/v2/repositories'))) {
        return { dryRun: input.dryRun, blobs: 0, bytes: 0, manifests: 0, storageBytesBefore: before, storageBytesAfter: before };
      }
      return boundary(() =>
        withHeartbeat('garbage-collect', async () => {
          // Sizes are read from a dry run first: the real run leaves nothing to measure.
          const planned = parseGcOutput(await runGc(binary, config, true));
          const bytes = planned.eligible.reduce((sum, d) => sum + blobBytes(root, d), 0);
          if (input.dryRun) {
            return {
              dryRun: true,
              blobs: planned.eligible.length,
              bytes,
              manifests: planned.manifests,
              storageBytesBefore: before,
              storageBytesAfter: before,
            };
          }
          const done = parseGcOutput(await runGc(binary, config, false));
          const after = treeBytes(root);
          return {
            dryRun: false,
            blobs: done.eligible.length,
            // Freed: what the storage directory lost (an upload meanwhile can make it less than the dry run said).
            bytes: Math.max(0, before - after),
            manifests: done.manifests,
            storageBytesBefore: before,
            storageBytesAfter: after,
          };
        }),
      );
    },

    /**
     * Every live snapshot in storage, checked blob by blob: a save whose manifest landed while a gc was sweeping can
     * name blobs that were swept. Read-only, so safe to run twice.
     */
    async checkStoredSnapshots(): Promise<StorageCheck> {
      const { db, storage } = deps;
      if (!db || !storage) return { checked: 0, damaged: [] };
      const live = await liveStoredSnapshots(db, storage.registryHost);
      const damaged: StorageCheck['damaged'] = [];
      await withHeartbeat('check stored snapshots', async () => {
        const credentials = { username: storage.username, password: storage.password };
        for (const s of live) {
          const at = s.storedRef.indexOf('@');
          if (at < 0) continue; // stored refs are pinned by digest; a tag alone names nothing to check
          const repository = s.storedRef.slice(storage.registryHost.length + 1, at);
          const missing = await missingBlobs({
            registry: storage.registryHost,
            repository,
            credentials,
            digest: s.storedRef.slice(at + 1),
          });
          if (missing.length) damaged.push({ snapshotId: s.id, workspace: s.workspace, name: s.name, storedRef: s.storedRef, missing });
        }
      });
      return { checked: live.length, damaged };
    },
  };
}

export interface StorageCheck {
  /** Live snapshots whose stored manifest and blobs were looked at. */
  checked: number;
  /** Those missing a blob (or their manifest): they no longer pull. */
  damaged: Array<{ snapshotId: string; workspace: string; name: string; storedRef: string; missing: string[] }>;
}

export type StorageGcActivities = ReturnType<typeof createStorageGcActivities>;
