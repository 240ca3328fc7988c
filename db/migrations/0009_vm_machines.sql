ALTER TABLE "hosts" ADD COLUMN "vm_profiles" jsonb;--> statement-breakpoint
ALTER TABLE "snapshots" ADD COLUMN "machine_profile" text;