/**
 * Compares what a digest sealed (its leaves) with what the store holds now over the same range, and
 * names each difference: `modified` (another event at a sealed position), `missing` (a sealed event
 * gone), `inserted` (an event no digest sealed, inside a sealed range), `reordered` (a sealed event
 * found at another position). Pure, so every case is testable without a store.
 */
import type { DigestLeaf } from './digest.ts';

export interface ObservedEvent {
  readonly position: string;
  readonly streamName: string;
  readonly revision: string;
  readonly hash: string;
}

export type EventFindingKind = 'modified' | 'missing' | 'inserted' | 'reordered';

export interface EventFinding {
  readonly kind: EventFindingKind;
  readonly position: string;
  readonly stream: string;
  readonly revision: string;
  readonly detail: string;
}

export const compareSealed = (
  sealed: readonly DigestLeaf[],
  observed: readonly ObservedEvent[],
): EventFinding[] => {
  const findings: EventFinding[] = [];
  const observedAt = new Map(observed.map((event) => [event.position, event]));
  const sealedAt = new Map(sealed.map((leaf) => [leaf[0], leaf]));
  const observedPositionsByHash = new Map<string, string[]>();
  for (const event of observed) {
    const positions = observedPositionsByHash.get(event.hash) ?? [];
    positions.push(event.position);
    observedPositionsByHash.set(event.hash, positions);
  }
  const sealedHashes = new Set(sealed.map((leaf) => leaf[3]));
  const movedElsewhere = (hash: string, position: string) =>
    (observedPositionsByHash.get(hash) ?? []).find((other) => other !== position);

  for (const [position, stream, revision, hash] of sealed) {
    const now = observedAt.get(position);
    if (now?.hash === hash) continue;
    const elsewhere = movedElsewhere(hash, position);
    if (elsewhere !== undefined) {
      findings.push({
        kind: 'reordered',
        position,
        stream,
        revision,
        detail: `sealed at ${position}, now found at ${elsewhere}`,
      });
    } else if (now === undefined) {
      findings.push({
        kind: 'missing',
        position,
        stream,
        revision,
        detail: `sealed at ${position}, no longer there`,
      });
    } else if (!sealedHashes.has(now.hash)) {
      findings.push({
        kind: 'modified',
        position,
        stream: now.streamName,
        revision: now.revision,
        detail:
          now.streamName === stream && now.revision === revision
            ? 'its content differs from what was sealed'
            : `sealed as ${stream} revision ${revision}, now reads as ${now.streamName} revision ${now.revision}`,
      });
    }
  }
  for (const event of observed) {
    if (sealedAt.has(event.position)) continue;
    if (sealedHashes.has(event.hash)) continue; // reported as reordered from its sealed position
    findings.push({
      kind: 'inserted',
      position: event.position,
      stream: event.streamName,
      revision: event.revision,
      detail: 'inside a sealed range, but no digest sealed it',
    });
  }
  return findings;
};
