/** Every read-model table calltrail's database holds, for drizzle and drizzle-kit. */
export { calls } from '../../projections/calls/read-model.ts';
export { callTimeline } from '../../projections/call-timeline/read-model.ts';
export { quarantinedRequests } from '../../projections/quarantine/read-model.ts';
export { relayExchanges } from '../../projections/call-timeline/relay-exchanges.ts';
export { assistantRequestExchanges } from '../../projections/call-timeline/assistant-request-exchanges.ts';
export { terminations } from '../../projections/terminations/read-model.ts';
export {
  healthHourlyCalls,
  healthDailyDurations,
  healthHourlyFailures,
} from '../../projections/health-hourly/read-model.ts';
export { projectionCheckpoints, projectionDeadLetters } from '../projector/schema.ts';
export {
  forwardingAttempts,
  forwardingCheckpoints,
  forwardingDeliveries,
  forwardingDestinations,
} from '../forwarding/schema.ts';
