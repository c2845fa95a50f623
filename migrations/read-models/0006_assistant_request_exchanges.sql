CREATE TABLE "assistant_request_exchanges" (
	"event_id" uuid PRIMARY KEY NOT NULL,
	"stream_name" text NOT NULL,
	"request_event_id" text NOT NULL,
	"request_type" text NOT NULL,
	"destination" text NOT NULL,
	"outcome" text NOT NULL,
	"failure" text,
	"failure_detail" text,
	"answered_with" text NOT NULL,
	"answer_status" integer NOT NULL,
	"response_status" integer,
	"response_content_type" text,
	"response_bytes" integer,
	"latency_ms" double precision NOT NULL,
	"request_journaled" boolean NOT NULL,
	"started_at" timestamp (3) with time zone NOT NULL,
	"stream_revision" bigint NOT NULL,
	"commit_position" numeric(20, 0) NOT NULL,
	"prepare_position" numeric(20, 0) NOT NULL
);
--> statement-breakpoint
CREATE INDEX "assistant_request_exchanges_position_idx" ON "assistant_request_exchanges" USING btree ("commit_position","prepare_position");