CREATE INDEX "default_pointers_snapshot_idx" ON "default_pointers" USING btree ("snapshot_id");--> statement-breakpoint
CREATE INDEX "issues_pinned_snapshot_idx" ON "issues" USING btree ("pinned_snapshot_id");--> statement-breakpoint
CREATE INDEX "sandboxes_latest_session_idx" ON "sandboxes" USING btree ("latest_session_snapshot_id");--> statement-breakpoint
CREATE INDEX "sandboxes_scope_idx" ON "sandboxes" USING btree ("scope");