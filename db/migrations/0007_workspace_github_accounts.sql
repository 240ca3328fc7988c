CREATE TABLE "workspace_github_accounts" (
	"workspace" text NOT NULL,
	"account" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "workspace_github_accounts_pkey" PRIMARY KEY("workspace","account"),
	CONSTRAINT "workspace_github_accounts_lowercase" CHECK ("workspace_github_accounts"."account" = lower("workspace_github_accounts"."account"))
);
