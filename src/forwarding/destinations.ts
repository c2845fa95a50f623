/**
 * Forwarding destinations: where archived events are delivered onward, each with the event types it
 * wants. The configured list (`CALLTRAIL_FORWARD_DESTINATIONS`, JSON) is validated at start-up; the
 * relay's destination, when calltrail runs in line, is added to it as `relay`.
 */
import Type from 'typebox';
import Value from 'typebox/value';
import { CallEventType } from '../archive/archived-event.ts';

export interface Destination {
  readonly name: string;
  readonly url: URL;
  /** The event types it wants; undefined: every type. */
  readonly eventTypes: readonly CallEventType[] | undefined;
}

const DestinationEntry = Type.Object(
  {
    name: Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,62}$' }),
    url: Type.String({ minLength: 1 }),
    eventTypes: Type.Optional(Type.Array(CallEventType, { minItems: 1 })),
  },
  { additionalProperties: false },
);
const DestinationList = Type.Array(DestinationEntry);

/** The relay's destination's name, and the types it wants: the relay answers the others live. */
export const relayDestinationName = 'relay';
export const relayEventTypes: readonly CallEventType[] = ['status-update', 'end-of-call-report', 'unknown'];

const checkUrl = (text: string, where: string): URL => {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`${where}: ${JSON.stringify(text)} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`${where}: only http and https URLs can be delivered to`);
  }
  if (url.username !== '' || url.password !== '') {
    throw new Error(`${where}: credentials in the URL are not accepted (they would be shown in logs)`);
  }
  if (url.hash !== '') throw new Error(`${where}: a URL with a fragment is not accepted`);
  return url;
};

/** Parses and checks the JSON list; throws an Error saying what is wrong and where. */
export const parseDestinations = (json: string | undefined): readonly Destination[] => {
  if (json === undefined) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw new Error('not JSON: expected [{"name": ..., "url": ..., "eventTypes": [...]}]');
  }
  const error = Value.Errors(DestinationList, parsed)[0];
  if (error !== undefined) {
    throw new Error(`${error.instancePath || '/'}: ${error.message}`);
  }
  const entries = parsed as Type.Static<typeof DestinationList>;
  const seen = new Set<string>();
  return entries.map((entry, index) => {
    if (seen.has(entry.name)) throw new Error(`/${index}/name: ${entry.name} is named twice`);
    seen.add(entry.name);
    return {
      name: entry.name,
      url: checkUrl(entry.url, `/${index}/url`),
      eventTypes: entry.eventTypes === undefined ? undefined : [...new Set(entry.eventTypes)],
    };
  });
};

/** Forwarded requests are always signed: any destination needs the secret. */
export const checkForwardingSecret = (
  destinations: readonly Destination[],
  secret: string | undefined,
): void => {
  if (destinations.length > 0 && secret === undefined) {
    throw new Error('required when events are forwarded (at least 16 characters)');
  }
};

/**
 * Every destination: the relay's (`relay`, for the types the relay does not answer live) when a
 * relay URL is given, then the configured ones. Throws naming the variable when a configured name
 * takes `relay`, or when the secret is missing.
 */
export const forwardingDestinations = (
  configured: readonly Destination[],
  relayUrl: string | undefined,
  secret: string | undefined,
): readonly Destination[] => {
  const all = [...configured];
  if (relayUrl !== undefined) {
    if (configured.some((destination) => destination.name === relayDestinationName)) {
      throw new Error(
        `CALLTRAIL_FORWARD_DESTINATIONS: the name ${relayDestinationName} is the relay's destination's`,
      );
    }
    all.unshift({
      name: relayDestinationName,
      url: checkUrl(relayUrl, 'relay URL'),
      eventTypes: relayEventTypes,
    });
  }
  try {
    checkForwardingSecret(all, secret);
  } catch (error) {
    throw new Error(`CALLTRAIL_FORWARD_SECRET: ${(error as Error).message}`);
  }
  return all;
};

/** The names forwarded to: the relay's, when calltrail runs in line, and the configured ones. */
export const configuredDestinationNames = (
  configured: readonly Destination[],
  relayConfigured: boolean,
): string[] => [
  ...(relayConfigured ? [relayDestinationName] : []),
  ...configured.map((destination) => destination.name),
];

export const wants = (destination: Destination, eventType: string): boolean =>
  destination.eventTypes === undefined || destination.eventTypes.some((type) => type === eventType);
