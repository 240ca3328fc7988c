// The scheduled reconciler's result (workflows/reconcile.ts).

export interface ReconcileResult {
  checked: number;
  failed: string[];
}
