CREATE TABLE "forwarding_attempts" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"delivery_id" bigint NOT NULL,
	"attempt" integer NOT NULL,
	"destination" text NOT NULL,
	"attempted_at" timestamp (3) with time zone NOT NULL,
	"status" integer,
	"latency_ms" integer NOT NULL,
	"error" text,
	"response" text
);
--> statement-breakpoint
CREATE TABLE "forwarding_checkpoints" (
	"forwarder" text PRIMARY KEY NOT NULL,
	"commit_position" numeric(20, 0) NOT NULL,
	"prepare_position" numeric(20, 0) NOT NULL,
	"updated_at" timestamp (3) with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "forwarding_deliveries" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"destination" text NOT NULL,
	"event_id" uuid NOT NULL,
	"stream_name" text NOT NULL,
	"stream_revision" bigint NOT NULL,
	"commit_position" numeric(20, 0) NOT NULL,
	"prepare_position" numeric(20, 0) NOT NULL,
	"event_type" text NOT NULL,
	"call_id" text,
	"status" text NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"round_start" integer DEFAULT 0 NOT NULL,
	"next_attempt_at" timestamp (3) with time zone NOT NULL,
	"recorded_at" timestamp (3) with time zone NOT NULL,
	"finished_at" timestamp (3) with time zone,
	"last_status" integer,
	"last_error" text,
	CONSTRAINT "forwarding_deliveries_event_uq" UNIQUE("destination","event_id")
);
--> statement-breakpoint
CREATE TABLE "forwarding_destinations" (
	"name" text PRIMARY KEY NOT NULL,
	"paused_reason" text,
	"paused_at" timestamp (3) with time zone,
	"consecutive_failures" integer DEFAULT 0 NOT NULL,
	"probe_at" timestamp (3) with time zone
);
--> statement-breakpoint
CREATE INDEX "forwarding_attempts_delivery_idx" ON "forwarding_attempts" USING btree ("delivery_id","attempt");--> statement-breakpoint
CREATE INDEX "forwarding_deliveries_pending_idx" ON "forwarding_deliveries" USING btree ("destination","stream_name","commit_position","prepare_position") WHERE status = 'pending';--> statement-breakpoint
CREATE INDEX "forwarding_deliveries_due_idx" ON "forwarding_deliveries" USING btree ("commit_position","prepare_position") WHERE status = 'pending';--> statement-breakpoint
CREATE INDEX "forwarding_deliveries_call_idx" ON "forwarding_deliveries" USING btree ("call_id");--> statement-breakpoint
CREATE INDEX "forwarding_deliveries_destination_idx" ON "forwarding_deliveries" USING btree ("destination","status","recorded_at");