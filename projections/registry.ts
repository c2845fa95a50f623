/**
 * Every projection the projector runs, by name. Each has its own checkpoint, so one can be rebuilt
 * (or fall behind) without touching the others.
 */
import { callTimelineProjection } from './call-timeline/projection.ts';
import { callsProjection } from './calls/projection.ts';
import { streamPrefixesOf, type Projection } from './projection.ts';
import { quarantineProjection } from './quarantine/projection.ts';

export const projections: readonly Projection[] = [
  callsProjection,
  callTimelineProjection,
  quarantineProjection,
];

/** The streams the projections fold, by prefix: what the projector and a rebuild subscribe to. */
export const projectedStreamPrefixes: readonly string[] = [...new Set(projections.flatMap(streamPrefixesOf))];

export const projectionNames: readonly string[] = projections.map((projection) => projection.name);

export class UnknownProjectionError extends Error {
  override readonly name = 'UnknownProjectionError';
}

export const projectionNamed = (name: string): Projection => {
  const found = projections.find((projection) => projection.name === name);
  if (found === undefined) {
    throw new UnknownProjectionError(
      `unknown projection ${JSON.stringify(name)}; valid projections: ${projectionNames.join(', ')}`,
    );
  }
  return found;
};
