// Workflow histories kept as replay fixtures: recorded from real runs on the real stack when
// SNAPFLOW_RECORD_HISTORY=1, replayed by test/sandboxReplay.test.ts against today's workflow code.
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';

export const FIXTURE_DIR = join(__dirname, '..', 'fixtures');

/** Every `*.pb` fixture, by name. */
export function historyFixtures(): string[] {
  return readdirSync(FIXTURE_DIR)
    .filter((f) => f.endsWith('.pb'))
    .sort();
}

/**
 * Writes every run of `workflowId` (first run, then each run it continued as new into) as `<name>.pb`,
 * `<name>-run2.pb`, …; does nothing unless SNAPFLOW_RECORD_HISTORY is set. A value other than `1` is added to each
 * name (SNAPFLOW_RECORD_HISTORY=-backends → `<name>-backends.pb`), so a new recording keeps the older ones beside it.
 * Call it once the workflow has ended.
 */
export async function recordHistory(client: Client, workflowId: string, name: string): Promise<void> {
  const mark = process.env.SNAPFLOW_RECORD_HISTORY;
  if (!mark) return;
  const suffix = mark === '1' ? '' : mark;
  let runId = (await client.workflow.getHandle(workflowId).describe()).raw.workflowExecutionInfo?.firstRunId ?? undefined;
  for (let run = 1; runId; run++) {
    const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
    const file = join(FIXTURE_DIR, `${name}${suffix}${run > 1 ? `-run${run}` : ''}.pb`);
    writeFileSync(file, temporal.api.history.v1.History.encode(history).finish());
    const last = history.events?.[history.events.length - 1];
    runId = last?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
  }
}
