CREATE TYPE "public"."golden_build_status" AS ENUM('running', 'succeeded', 'failed', 'skipped');--> statement-breakpoint
CREATE TYPE "public"."golden_build_trigger" AS ENUM('build-now', 'schedule');--> statement-breakpoint
CREATE TABLE "golden_builds" (
	"id" uuid PRIMARY KEY NOT NULL,
	"scope" text NOT NULL,
	"trigger" "golden_build_trigger" NOT NULL,
	"status" "golden_build_status" DEFAULT 'running' NOT NULL,
	"reason" text,
	"message" text,
	"figures" jsonb,
	"snapshot_id" uuid,
	"workflow_id" text NOT NULL,
	"run_id" text,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone,
	CONSTRAINT "golden_builds_reason_when_not_ok" CHECK ("golden_builds"."status" in ('running', 'succeeded') OR "golden_builds"."reason" IS NOT NULL)
);
--> statement-breakpoint
ALTER TABLE "golden_build_configs" ADD COLUMN "skills_path" text;--> statement-breakpoint
ALTER TABLE "golden_build_configs" ADD COLUMN "deps_fallback_command" text;--> statement-breakpoint
ALTER TABLE "golden_builds" ADD CONSTRAINT "golden_builds_snapshot_id_snapshots_id_fk" FOREIGN KEY ("snapshot_id") REFERENCES "public"."snapshots"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "golden_builds_scope_idx" ON "golden_builds" USING btree ("scope","started_at" DESC NULLS LAST);