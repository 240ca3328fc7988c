ALTER TABLE "workspaces" ADD COLUMN "sandbox_idle_timeout_seconds" integer;--> statement-breakpoint
ALTER TABLE "workspaces" ADD COLUMN "sandbox_max_lifetime_seconds" integer;--> statement-breakpoint
ALTER TABLE "workspaces" ADD CONSTRAINT "workspaces_sandbox_idle_timeout_positive" CHECK ("workspaces"."sandbox_idle_timeout_seconds" > 0);--> statement-breakpoint
ALTER TABLE "workspaces" ADD CONSTRAINT "workspaces_sandbox_max_lifetime_positive" CHECK ("workspaces"."sandbox_max_lifetime_seconds" > 0);