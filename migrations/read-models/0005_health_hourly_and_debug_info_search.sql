CREATE TABLE "health_daily_durations" (
	"day" timestamp (3) with time zone NOT NULL,
	"assistant" text,
	"bucket" smallint NOT NULL,
	"calls" integer NOT NULL,
	CONSTRAINT "health_daily_durations_key" UNIQUE NULLS NOT DISTINCT("day","assistant","bucket")
);
--> statement-breakpoint
CREATE TABLE "health_hourly_calls" (
	"hour" timestamp (3) with time zone NOT NULL,
	"assistant" text,
	"started" integer NOT NULL,
	"ended" integer NOT NULL,
	"failed" integer NOT NULL,
	CONSTRAINT "health_hourly_calls_key" UNIQUE NULLS NOT DISTINCT("hour","assistant")
);
--> statement-breakpoint
CREATE TABLE "health_hourly_failures" (
	"hour" timestamp (3) with time zone NOT NULL,
	"assistant" text,
	"artifact_group" text,
	"ended_reason" text,
	"failures" integer NOT NULL,
	CONSTRAINT "health_hourly_failures_key" UNIQUE NULLS NOT DISTINCT("hour","assistant","artifact_group","ended_reason")
);
--> statement-breakpoint
CREATE INDEX "terminations_failure_examples_idx" ON "terminations" USING btree ("debugging_artifact_group","ended_at") WHERE outcome = 'ended-with-debugging';--> statement-breakpoint
-- Summaries of the calls already projected.
INSERT INTO health_hourly_calls (hour, assistant, started, ended, failed)
SELECT hour, assistant, sum(started)::int, sum(ended)::int, sum(failed)::int FROM (
  SELECT date_trunc('hour', first_event_at, 'UTC') AS hour, assistant, 1 AS started, 0 AS ended, 0 AS failed
    FROM calls WHERE first_event_at IS NOT NULL
  UNION ALL
  SELECT date_trunc('hour', ended_at, 'UTC'), assistant, 0,
         (outcome <> 'ended-with-debugging')::int, (outcome = 'ended-with-debugging')::int
    FROM terminations
) AS contributions GROUP BY 1, 2;
--> statement-breakpoint
INSERT INTO health_hourly_failures (hour, assistant, artifact_group, ended_reason, failures)
SELECT date_trunc('hour', ended_at, 'UTC'), assistant, debugging_artifact_group, ended_reason, count(*)::int
  FROM terminations WHERE outcome = 'ended-with-debugging' GROUP BY 1, 2, 3, 4;
--> statement-breakpoint
INSERT INTO health_daily_durations (day, assistant, bucket, calls)
SELECT date_trunc('day', ended_at, 'UTC'), assistant, CASE WHEN duration_seconds < 0.1 THEN 0 ELSE least(1200, floor(ln(duration_seconds / 0.1) / ln(1.02))::int + 1) END, count(*)::int
  FROM terminations WHERE duration_seconds IS NOT NULL AND duration_seconds <> 'NaN'::float8
    AND duration_seconds NOT IN ('Infinity'::float8, '-Infinity'::float8)
  GROUP BY 1, 2, 3;
--> statement-breakpoint
-- Debug Info search (`ILIKE '%text%'` on calls.debugging_artifact) through a trigram index. pg_trgm
-- ships with PostgreSQL (and with the embedded server); where it cannot be created (a managed
-- server without it, a role that may not create extensions), the search still works by scanning,
-- and an administrator can add both later (see the README).
DO $$
BEGIN
  CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN OTHERS THEN
  RAISE NOTICE 'pg_trgm is not available (%): the Debug Info search scans calls without an index', SQLERRM;
END
$$;
--> statement-breakpoint
DO $$
DECLARE
  trgm_schema name := (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm');
BEGIN
  IF trgm_schema IS NOT NULL THEN
    EXECUTE format('CREATE INDEX IF NOT EXISTS calls_debugging_artifact_trgm_idx ON calls USING gin (debugging_artifact %I.gin_trgm_ops)', trgm_schema);
  END IF;
END
$$;
