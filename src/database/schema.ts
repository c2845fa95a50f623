/** Every read-model table calltrail's database holds, for drizzle and drizzle-kit. */
export { calls } from '../../projections/calls.ts';
export { callTimeline } from '../../projections/call-timeline.ts';
export { terminations } from '../../projections/terminations.ts';
export { projectionCheckpoints, projectionDeadLetters } from '../projector/schema.ts';
