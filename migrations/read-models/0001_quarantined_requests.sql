CREATE TABLE "quarantined_requests" (
	"commit_position" numeric(20, 0) NOT NULL,
	"prepare_position" numeric(20, 0) NOT NULL,
	"event_id" text NOT NULL,
	"stream_name" text NOT NULL,
	"stream_revision" bigint NOT NULL,
	"event_type" text NOT NULL,
	"received_at" text,
	"stored_at" timestamp (3) with time zone NOT NULL,
	"signature_verified" boolean,
	"reception" json NOT NULL,
	"data" json NOT NULL,
	"raw_body" "bytea",
	"raw_body_encoding" text,
	CONSTRAINT "quarantined_requests_commit_position_prepare_position_pk" PRIMARY KEY("commit_position","prepare_position")
);
