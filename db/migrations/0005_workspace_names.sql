ALTER TABLE "default_history" RENAME COLUMN "scope" TO "workspace";
--> statement-breakpoint
ALTER TABLE "default_pointers" RENAME COLUMN "scope" TO "workspace";
--> statement-breakpoint
ALTER TABLE "github_connections" RENAME COLUMN "scope" TO "workspace";
--> statement-breakpoint
ALTER TABLE "golden_build_configs" RENAME COLUMN "scope" TO "workspace";
--> statement-breakpoint
ALTER TABLE "golden_builds" RENAME COLUMN "scope" TO "workspace";
--> statement-breakpoint
ALTER TABLE "issues" RENAME COLUMN "scope" TO "workspace";
--> statement-breakpoint
ALTER TABLE "sandboxes" RENAME COLUMN "scope" TO "workspace";
--> statement-breakpoint
ALTER TABLE "snapshots" RENAME COLUMN "scope" TO "workspace";
--> statement-breakpoint
ALTER TABLE "agents" RENAME COLUMN "workspace_id" TO "workspace";
--> statement-breakpoint
ALTER TABLE "audit_events" RENAME COLUMN "scope" TO "workspace";
--> statement-breakpoint
ALTER TABLE "members" RENAME COLUMN "workspace_id" TO "workspace";
--> statement-breakpoint
ALTER TABLE "agents" RENAME CONSTRAINT "agents_workspace_id_workspaces_id_fk" TO "agents_workspace_workspaces_id_fk";
--> statement-breakpoint
ALTER TABLE "members" RENAME CONSTRAINT "members_workspace_id_workspaces_id_fk" TO "members_workspace_workspaces_id_fk";
