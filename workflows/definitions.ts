// Queries, signals and updates, in a module without activity proxies so clients can import it safely.
import { defineQuery } from '@temporalio/workflow';
import type { ImageSnapshotRequest } from './imageSnapshot';

/** What a running image snapshot was asked for: a concurrent create of the same name compares against it. */
export const imageSnapshotRequestQuery = defineQuery<ImageSnapshotRequest>('request');
