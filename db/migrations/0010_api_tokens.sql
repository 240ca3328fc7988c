CREATE TABLE "api_tokens" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"user_id" text NOT NULL,
	"token_hash" text NOT NULL,
	"prefix" text NOT NULL,
	"operator" boolean DEFAULT false NOT NULL,
	"workspace" text,
	"role" "member_role",
	"expires_at" timestamp with time zone,
	"revoked_at" timestamp with time zone,
	"last_used_at" timestamp with time zone,
	"created_by" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "api_tokens_hash_key" UNIQUE("token_hash"),
	CONSTRAINT "api_tokens_role_needs_workspace" CHECK ("api_tokens"."role" IS NULL OR "api_tokens"."workspace" IS NOT NULL),
	CONSTRAINT "api_tokens_operator_unscoped" CHECK (NOT "api_tokens"."operator" OR "api_tokens"."workspace" IS NULL)
);
--> statement-breakpoint
ALTER TABLE "api_tokens" ADD CONSTRAINT "api_tokens_workspace_workspaces_id_fk" FOREIGN KEY ("workspace") REFERENCES "public"."workspaces"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "api_tokens_user_idx" ON "api_tokens" USING btree ("user_id");