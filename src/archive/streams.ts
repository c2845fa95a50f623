/**
 * Stream naming: one stream per call session, one per UTC day for events that belong to no call
 * (assistant-request) and for quarantined requests. Projections subscribe by these prefixes.
 */
export const callStreamPrefix = 'call-';
export const assistantRequestStreamPrefix = 'assistant-requests-';
export const quarantineStreamPrefix = 'quarantine-';

/** Every stream calltrail writes starts with one of these; replay of "everything" uses them all. */
export const archiveStreamPrefixes = [callStreamPrefix, assistantRequestStreamPrefix, quarantineStreamPrefix];

export const callStreamName = (callId: string): string => `${callStreamPrefix}${callId}`;

const utcDay = (at: Date): string => at.toISOString().slice(0, 10);

export const assistantRequestStreamName = (receivedAt: Date): string =>
  `${assistantRequestStreamPrefix}${utcDay(receivedAt)}`;

export const quarantineStreamName = (receivedAt: Date): string =>
  `${quarantineStreamPrefix}${utcDay(receivedAt)}`;

/**
 * The access log (`src/access/`): who read what, one stream per UTC day. Not an archive stream
 * (replay, forwarding and projections leave it alone), but sealed and verified with the archive.
 */
export const accessStreamPrefix = 'access-';

export const accessStreamName = (at: Date): string => `${accessStreamPrefix}${utcDay(at)}`;

/** What the sealer seals and `calltrail verify` checks: the archive and the access log. */
export const sealedStreamPrefixes = [...archiveStreamPrefixes, accessStreamPrefix];
