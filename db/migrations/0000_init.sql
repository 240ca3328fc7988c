CREATE TYPE "public"."github_connection_status" AS ENUM('connected', 'expired', 'missing');--> statement-breakpoint
CREATE TYPE "public"."host_status" AS ENUM('online', 'draining', 'offline');--> statement-breakpoint
CREATE TYPE "public"."runtime" AS ENUM('codex', 'pi');--> statement-breakpoint
CREATE TYPE "public"."sandbox_class" AS ENUM('vm', 'container');--> statement-breakpoint
CREATE TYPE "public"."sandbox_state" AS ENUM('provisioning', 'idle', 'busy', 'snapshotting', 'promoting', 'stopped', 'failed');--> statement-breakpoint
CREATE TYPE "public"."snapshot_kind" AS ENUM('image', 'session', 'golden');--> statement-breakpoint
CREATE TYPE "public"."snapshot_origin" AS ENUM('user', 'job', 'build-now', 'schedule', 'promote');--> statement-breakpoint
CREATE TYPE "public"."snapshot_status" AS ENUM('pending', 'active', 'failed', 'deleting', 'deleted');--> statement-breakpoint
CREATE TABLE "default_history" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"scope" text NOT NULL,
	"size" text NOT NULL,
	"profile_key" text NOT NULL,
	"snapshot_id" uuid NOT NULL,
	"previous_snapshot_id" uuid,
	"actor" text NOT NULL,
	"reason" text,
	"workflow_id" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "default_pointers" (
	"scope" text NOT NULL,
	"size" text NOT NULL,
	"profile_key" text NOT NULL,
	"snapshot_id" uuid NOT NULL,
	"version" integer DEFAULT 1 NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "default_pointers_pkey" PRIMARY KEY("scope","size","profile_key"),
	CONSTRAINT "default_pointers_version_positive" CHECK ("default_pointers"."version" > 0)
);
--> statement-breakpoint
CREATE TABLE "github_connections" (
	"scope" text PRIMARY KEY NOT NULL,
	"installation_id" bigint NOT NULL,
	"account" text,
	"status" "github_connection_status" NOT NULL,
	"validated_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "github_connections_installation_positive" CHECK ("github_connections"."installation_id" > 0)
);
--> statement-breakpoint
CREATE TABLE "golden_build_configs" (
	"scope" text PRIMARY KEY NOT NULL,
	"repos" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"embed_skills" boolean DEFAULT false NOT NULL,
	"prebuild_deps" boolean DEFAULT false NOT NULL,
	"targets" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"schedule_cron" text,
	"schedule_time_zone" text DEFAULT 'UTC' NOT NULL,
	"enabled" boolean DEFAULT false NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "golden_build_configs_repos_array" CHECK (jsonb_typeof("golden_build_configs"."repos") = 'array'),
	CONSTRAINT "golden_build_configs_targets_array" CHECK (jsonb_typeof("golden_build_configs"."targets") = 'array')
);
--> statement-breakpoint
CREATE TABLE "host_cache" (
	"host_id" text NOT NULL,
	"snapshot_id" uuid NOT NULL,
	"cached_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_used_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "host_cache_pkey" PRIMARY KEY("host_id","snapshot_id")
);
--> statement-breakpoint
CREATE TABLE "hosts" (
	"id" text PRIMARY KEY NOT NULL,
	"task_queue" text NOT NULL,
	"docker_endpoint" text NOT NULL,
	"memory_total_mib" integer NOT NULL,
	"status" "host_status" DEFAULT 'online' NOT NULL,
	"last_seen_at" timestamp with time zone DEFAULT now() NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "hosts_task_queue_unique" UNIQUE("task_queue"),
	CONSTRAINT "hosts_id_slug" CHECK ("hosts"."id" ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
	CONSTRAINT "hosts_memory_positive" CHECK ("hosts"."memory_total_mib" > 0)
);
--> statement-breakpoint
CREATE TABLE "issues" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"scope" text NOT NULL,
	"external_key" text NOT NULL,
	"pinned_snapshot_id" uuid,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "issues_scope_external_key_key" UNIQUE("scope","external_key")
);
--> statement-breakpoint
CREATE TABLE "sandboxes" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"scope" text NOT NULL,
	"class" "sandbox_class" NOT NULL,
	"size" text NOT NULL,
	"runtime" "runtime" NOT NULL,
	"profile_key" text NOT NULL,
	"keep_alive" boolean DEFAULT false NOT NULL,
	"state" "sandbox_state" DEFAULT 'provisioning' NOT NULL,
	"host_id" text,
	"container_id" text,
	"latest_session_snapshot_id" uuid,
	"issue_id" uuid,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "sandboxes_snapshot_only_vm" CHECK ("sandboxes"."class" = 'vm' OR "sandboxes"."latest_session_snapshot_id" IS NULL)
);
--> statement-breakpoint
CREATE TABLE "size_presets" (
	"key" text PRIMARY KEY NOT NULL,
	"vcpus" integer NOT NULL,
	"memory_mib" integer NOT NULL,
	CONSTRAINT "size_presets_vcpus_positive" CHECK ("size_presets"."vcpus" > 0),
	CONSTRAINT "size_presets_memory_positive" CHECK ("size_presets"."memory_mib" > 0)
);
--> statement-breakpoint
CREATE TABLE "snapshot_events" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"snapshot_id" uuid NOT NULL,
	"type" text NOT NULL,
	"from_status" "snapshot_status",
	"to_status" "snapshot_status",
	"message" text,
	"actor" text,
	"workflow_id" text,
	"run_id" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "snapshots" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"scope" text NOT NULL,
	"name" text NOT NULL,
	"kind" "snapshot_kind" NOT NULL,
	"source_image" text,
	"resolved_digest" text,
	"stored_ref" text,
	"entrypoint" text DEFAULT '/app/start.sh' NOT NULL,
	"runtime" "runtime" NOT NULL,
	"size" text NOT NULL,
	"profile_key" text NOT NULL,
	"status" "snapshot_status" DEFAULT 'pending' NOT NULL,
	"error_code" text,
	"error_message" text,
	"origin" "snapshot_origin" NOT NULL,
	"parent_snapshot_id" uuid,
	"sandbox_id" uuid,
	"workflow_id" text,
	"run_id" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"deleted_at" timestamp with time zone,
	CONSTRAINT "snapshots_failed_has_error_code" CHECK ("snapshots"."status" <> 'failed' OR "snapshots"."error_code" IS NOT NULL),
	CONSTRAINT "snapshots_session_has_sandbox" CHECK ("snapshots"."kind" <> 'session' OR "snapshots"."sandbox_id" IS NOT NULL),
	CONSTRAINT "snapshots_name_format" CHECK ("snapshots"."name" ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
	CONSTRAINT "snapshots_entrypoint_absolute" CHECK (left("snapshots"."entrypoint", 1) = '/')
);
--> statement-breakpoint
ALTER TABLE "default_history" ADD CONSTRAINT "default_history_size_size_presets_key_fk" FOREIGN KEY ("size") REFERENCES "public"."size_presets"("key") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "default_history" ADD CONSTRAINT "default_history_snapshot_id_snapshots_id_fk" FOREIGN KEY ("snapshot_id") REFERENCES "public"."snapshots"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "default_history" ADD CONSTRAINT "default_history_previous_snapshot_id_snapshots_id_fk" FOREIGN KEY ("previous_snapshot_id") REFERENCES "public"."snapshots"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "default_pointers" ADD CONSTRAINT "default_pointers_size_size_presets_key_fk" FOREIGN KEY ("size") REFERENCES "public"."size_presets"("key") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "default_pointers" ADD CONSTRAINT "default_pointers_snapshot_id_snapshots_id_fk" FOREIGN KEY ("snapshot_id") REFERENCES "public"."snapshots"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "host_cache" ADD CONSTRAINT "host_cache_host_id_hosts_id_fk" FOREIGN KEY ("host_id") REFERENCES "public"."hosts"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "host_cache" ADD CONSTRAINT "host_cache_snapshot_id_snapshots_id_fk" FOREIGN KEY ("snapshot_id") REFERENCES "public"."snapshots"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "issues" ADD CONSTRAINT "issues_pinned_snapshot_id_snapshots_id_fk" FOREIGN KEY ("pinned_snapshot_id") REFERENCES "public"."snapshots"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "sandboxes" ADD CONSTRAINT "sandboxes_size_size_presets_key_fk" FOREIGN KEY ("size") REFERENCES "public"."size_presets"("key") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "sandboxes" ADD CONSTRAINT "sandboxes_host_id_hosts_id_fk" FOREIGN KEY ("host_id") REFERENCES "public"."hosts"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "sandboxes" ADD CONSTRAINT "sandboxes_latest_session_snapshot_id_snapshots_id_fk" FOREIGN KEY ("latest_session_snapshot_id") REFERENCES "public"."snapshots"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "sandboxes" ADD CONSTRAINT "sandboxes_issue_id_issues_id_fk" FOREIGN KEY ("issue_id") REFERENCES "public"."issues"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "snapshot_events" ADD CONSTRAINT "snapshot_events_snapshot_id_snapshots_id_fk" FOREIGN KEY ("snapshot_id") REFERENCES "public"."snapshots"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "snapshots" ADD CONSTRAINT "snapshots_size_size_presets_key_fk" FOREIGN KEY ("size") REFERENCES "public"."size_presets"("key") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "snapshots" ADD CONSTRAINT "snapshots_parent_snapshot_id_snapshots_id_fk" FOREIGN KEY ("parent_snapshot_id") REFERENCES "public"."snapshots"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "snapshots" ADD CONSTRAINT "snapshots_sandbox_id_sandboxes_id_fk" FOREIGN KEY ("sandbox_id") REFERENCES "public"."sandboxes"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "default_history_pointer_idx" ON "default_history" USING btree ("scope","size","profile_key","id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "host_cache_snapshot_idx" ON "host_cache" USING btree ("snapshot_id");--> statement-breakpoint
CREATE INDEX "sandboxes_host_idx" ON "sandboxes" USING btree ("host_id");--> statement-breakpoint
CREATE INDEX "snapshot_events_snapshot_idx" ON "snapshot_events" USING btree ("snapshot_id","id");--> statement-breakpoint
CREATE UNIQUE INDEX "snapshots_scope_name_live_idx" ON "snapshots" USING btree ("scope","name") WHERE "snapshots"."status" <> 'deleted';--> statement-breakpoint
CREATE INDEX "snapshots_lookup_idx" ON "snapshots" USING btree ("scope","kind","profile_key","status","created_at" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "snapshots_sandbox_idx" ON "snapshots" USING btree ("sandbox_id");