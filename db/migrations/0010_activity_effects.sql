CREATE TABLE "activity_effects" (
	"key" text PRIMARY KEY NOT NULL,
	"result" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE INDEX "activity_effects_created_idx" ON "activity_effects" USING btree ("created_at");