// Name resolution for deciding what a registry host reaches (lib/registryAddress.ts), on the machine that asks.
import { lookup } from 'node:dns/promises';
import { networkInterfaces } from 'node:os';
import type { ResolveAll } from './registryAddress';

/** A name that does not resolve within this long counts by its spelling only. */
const LOOKUP_TIMEOUT_MS = 2_000;

/** Every address the system resolver gives `name` (hosts file, DNS), as the engine's pull would look it up. */
export const resolveAll: ResolveAll = async (name) => {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<string[]>((done) => (timer = setTimeout(() => done([]), LOOKUP_TIMEOUT_MS).unref()));
  const found = lookup(name, { all: true, verbatim: true }).then(
    (all) => all.map((a) => a.address),
    () => [],
  );
  try {
    return await Promise.race([found, late]);
  } finally {
    clearTimeout(timer);
  }
};

/** This machine's own addresses: a listener on all of them is reached through any. */
export function localAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address));
}
