/** Quarantined requests as ingest stores them, with raw bodies of the test's choosing. */
import { randomUUID } from 'node:crypto';
import {
  archivedEventSchemaVersion,
  encodeRawBody,
  quarantinedRequestType,
  type QuarantinedRequest,
  type QuarantineReason,
  type ReceptionMetadata,
} from '../../src/archive/archived-event.ts';
import type { ProposedEvent } from '../../src/event-store/event-store.ts';

export interface QuarantinedSpec {
  readonly raw: Buffer;
  readonly receivedAt: string;
  readonly reason?: QuarantineReason;
  readonly contentType?: string | null;
}

export const quarantinedRecord = (
  spec: QuarantinedSpec,
): Pick<ProposedEvent, 'type' | 'data' | 'metadata'> => {
  const data: QuarantinedRequest = {
    schemaVersion: archivedEventSchemaVersion,
    reason: spec.reason ?? 'malformed-json',
    problems: [{ field: 'body', message: 'is not valid JSON' }],
    contentType: spec.contentType === undefined ? 'application/json' : spec.contentType,
    ...encodeRawBody(spec.raw),
  };
  const metadata: ReceptionMetadata = {
    receivedAt: spec.receivedAt,
    requestId: randomUUID(),
    sourceAddress: '203.0.113.9',
    signatureVerified: true,
    authentication: 'signature',
    userAgent: null,
  };
  return { type: quarantinedRequestType, data, metadata };
};

export const proposedQuarantined = (spec: QuarantinedSpec): ProposedEvent => ({
  id: randomUUID(),
  ...quarantinedRecord(spec),
});
