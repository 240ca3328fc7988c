// The scheduled reconciler's result (workflows/reconcile.ts).

export interface ReconcileResult {
  checked: number;
  failed: string[];
  /** `deleting` snapshots whose delete run was gone: their delete was started again (same workflow id). */
  retriedDeletes?: string[];
}
