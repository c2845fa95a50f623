CREATE TABLE "call_timeline" (
	"event_id" uuid PRIMARY KEY NOT NULL,
	"call_id" text NOT NULL,
	"event_type" text NOT NULL,
	"status" text,
	"raw_status" text,
	"debugging_artifact" text,
	"ended_reason" text,
	"event_time" timestamp (3) with time zone,
	"received_at" timestamp (3) with time zone NOT NULL,
	"signature_verified" boolean NOT NULL,
	"payload_generation" smallint NOT NULL,
	"stream_revision" bigint NOT NULL,
	"commit_position" numeric(20, 0) NOT NULL,
	"prepare_position" numeric(20, 0) NOT NULL
);
--> statement-breakpoint
CREATE TABLE "calls" (
	"call_id" text PRIMARY KEY NOT NULL,
	"caller" text,
	"assistant" text,
	"first_event_at" timestamp (3) with time zone,
	"last_event_at" timestamp (3) with time zone,
	"status" text,
	"outcome" text,
	"ended_reason" text,
	"debugging_artifact" text,
	"started_at" timestamp (3) with time zone,
	"ended_at" timestamp (3) with time zone,
	"duration_seconds" double precision,
	"event_count" integer NOT NULL,
	"last_revision" bigint NOT NULL,
	"last_commit_position" numeric(20, 0) NOT NULL,
	"last_prepare_position" numeric(20, 0) NOT NULL,
	"fold_state" json NOT NULL
);
--> statement-breakpoint
CREATE TABLE "projection_checkpoints" (
	"projection" text PRIMARY KEY NOT NULL,
	"commit_position" numeric(20, 0) NOT NULL,
	"prepare_position" numeric(20, 0) NOT NULL,
	"updated_at" timestamp (3) with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "projection_dead_letters" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"projection" text NOT NULL,
	"event_id" uuid NOT NULL,
	"stream_name" text NOT NULL,
	"stream_revision" bigint NOT NULL,
	"commit_position" numeric(20, 0) NOT NULL,
	"prepare_position" numeric(20, 0) NOT NULL,
	"event_type" text NOT NULL,
	"error" text NOT NULL,
	"recorded_at" timestamp (3) with time zone NOT NULL,
	CONSTRAINT "projection_dead_letters_event_uq" UNIQUE("projection","event_id")
);
--> statement-breakpoint
CREATE TABLE "terminations" (
	"call_id" text PRIMARY KEY NOT NULL,
	"outcome" text NOT NULL,
	"ended_reason" text,
	"debugging_artifact" text,
	"started_at" timestamp (3) with time zone,
	"ended_at" timestamp (3) with time zone NOT NULL,
	"duration_seconds" double precision,
	"caller" text,
	"assistant" text,
	"last_commit_position" numeric(20, 0) NOT NULL,
	"last_prepare_position" numeric(20, 0) NOT NULL
);
--> statement-breakpoint
CREATE INDEX "call_timeline_call_idx" ON "call_timeline" USING btree ("call_id","event_time","stream_revision");--> statement-breakpoint
CREATE INDEX "calls_last_event_at_idx" ON "calls" USING btree ("last_event_at","call_id");--> statement-breakpoint
CREATE INDEX "calls_first_event_at_idx" ON "calls" USING btree ("first_event_at","call_id");--> statement-breakpoint
CREATE INDEX "calls_status_idx" ON "calls" USING btree ("status","last_event_at");--> statement-breakpoint
CREATE INDEX "calls_caller_idx" ON "calls" USING btree ("caller","last_event_at");--> statement-breakpoint
CREATE INDEX "calls_assistant_idx" ON "calls" USING btree ("assistant","last_event_at");--> statement-breakpoint
CREATE INDEX "terminations_ended_at_idx" ON "terminations" USING btree ("ended_at","call_id");--> statement-breakpoint
CREATE INDEX "terminations_assistant_idx" ON "terminations" USING btree ("assistant","ended_at");