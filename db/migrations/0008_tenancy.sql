CREATE TABLE "workspace_github_accounts" (
	"workspace" text NOT NULL,
	"account" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "workspace_github_accounts_pkey" PRIMARY KEY("workspace","account"),
	CONSTRAINT "workspace_github_accounts_lowercase" CHECK ("workspace_github_accounts"."account" = lower("workspace_github_accounts"."account"))
);
--> statement-breakpoint
ALTER TABLE "workspaces" DROP CONSTRAINT "workspaces_id_slug";--> statement-breakpoint
ALTER TABLE "workspaces" ADD CONSTRAINT "workspaces_id_slug" CHECK ("workspaces"."id" ~ '^[a-z0-9][a-z0-9-]{0,62}$' AND "workspaces"."id" NOT IN ('system', 'golden', 'sessions', 'self-test', 'snapflow'));