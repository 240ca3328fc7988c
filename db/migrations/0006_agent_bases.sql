ALTER TABLE "sandboxes" ADD COLUMN "base_snapshot_id" uuid;--> statement-breakpoint
ALTER TABLE "sandboxes" ADD COLUMN "agent_id" uuid;--> statement-breakpoint
ALTER TABLE "agents" ADD COLUMN "health_command" jsonb;--> statement-breakpoint
ALTER TABLE "sandboxes" ADD CONSTRAINT "sandboxes_base_snapshot_id_snapshots_id_fk" FOREIGN KEY ("base_snapshot_id") REFERENCES "public"."snapshots"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "agents" ADD CONSTRAINT "agents_health_command_array" CHECK ("agents"."health_command" IS NULL OR jsonb_typeof("agents"."health_command") = 'array');