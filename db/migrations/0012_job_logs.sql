CREATE TABLE "log_chunks" (
	"log_id" text NOT NULL,
	"seq" integer NOT NULL,
	"stream" text NOT NULL,
	"at" timestamp with time zone NOT NULL,
	"data" "bytea" NOT NULL,
	CONSTRAINT "log_chunks_pkey" PRIMARY KEY("log_id","seq"),
	CONSTRAINT "log_chunks_stream" CHECK ("log_chunks"."stream" in ('stdout', 'stderr', 'note'))
);
--> statement-breakpoint
CREATE TABLE "logs" (
	"id" text PRIMARY KEY NOT NULL,
	"kind" text NOT NULL,
	"subject" text NOT NULL,
	"job" integer,
	"open" boolean DEFAULT true NOT NULL,
	"outcome" text,
	"exit_code" integer,
	"bytes" bigint DEFAULT 0 NOT NULL,
	"dropped" bigint DEFAULT 0 NOT NULL,
	"cut_at" bigint,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone,
	CONSTRAINT "logs_kind" CHECK ("logs"."kind" in ('job', 'snapshot', 'golden'))
);
--> statement-breakpoint
ALTER TABLE "log_chunks" ADD CONSTRAINT "log_chunks_log_id_logs_id_fk" FOREIGN KEY ("log_id") REFERENCES "public"."logs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "logs_subject_idx" ON "logs" USING btree ("subject","job");--> statement-breakpoint
CREATE INDEX "logs_finished_idx" ON "logs" USING btree ("finished_at");