/**
 * `GET /calls/:callId/proof` on both event stores: each sealed event's proof checks against its
 * digest's root, each digest's signature against the sealing key, events after the last digest are
 * listed as unsealed, and a tampered proof fails.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callStreamName } from '../../src/archive/streams.ts';
import { digestHash, signedBytes } from '../../src/sealing/digest.ts';
import { checkEventProof, type StreamProof } from '../../src/sealing/proof.ts';
import { verifyBytes } from '../../src/sealing/signing-key.ts';
import { bearer, eventStoreKinds } from '../audit/support.ts';
import { openSealedCallFixture, type SealedCallFixture } from './sealed-call.ts';

describe.each(eventStoreKinds)('GET /calls/:callId/proof on %s', (kind) => {
  let fixture: SealedCallFixture;
  const callId = `proof-${crypto.randomUUID()}`;

  beforeAll(async () => {
    fixture = await openSealedCallFixture(kind);
    for (let index = 0; index < 7; index += 1) await fixture.post(callId);
    await fixture.post(`other-${crypto.randomUUID()}`);
    await fixture.sealEverything();
    await fixture.post(callId, { status: 'ended' });
  }, 60_000);
  afterAll(async () => fixture?.close());

  const getProof = async (id = callId) =>
    fixture.test.app.inject({ method: 'GET', url: `/calls/${id}/proof`, headers: bearer() });

  it('proves each sealed event in a signed digest and lists the unsealed one', async () => {
    const response = await getProof();
    expect(response.statusCode).toBe(200);
    const proof = response.json<StreamProof & { callId: string }>();
    expect(proof.stream).toBe(callStreamName(callId));
    expect(proof.events.map((event) => event.status)).toEqual([
      ...Array<string>(7).fill('sealed'),
      'unsealed',
    ]);
    expect(proof.digests.length).toBeGreaterThan(1); // seven events over digests of at most five
    const digests = new Map(proof.digests.map((digest) => [digest.sequence, digest]));
    for (const digest of proof.digests) {
      expect(digest.keyId).toBe(fixture.key.keyId);
      expect(verifyBytes(fixture.key, signedBytes(digest), digest.signature)).toBe(true);
      expect(digestHash(digest)).toBe(digest.digestHash);
    }
    for (const event of proof.events.slice(0, 7)) {
      const digest = digests.get(event.proof!.digestSequence)!;
      expect(checkEventProof(event, digest)).toBe('ok');
    }
    const tampered = proof.events[3]!;
    const path = tampered.proof!.auditPath;
    expect(
      checkEventProof(
        { ...tampered, proof: { ...tampered.proof!, auditPath: [...path.slice(0, -1), '0'.repeat(64)] } },
        digests.get(tampered.proof!.digestSequence)!,
      ),
    ).toBe('path');
  });

  it('answers 404 for a call without events and 401 without a token', async () => {
    expect((await getProof(`missing-${crypto.randomUUID()}`)).statusCode).toBe(404);
    const anonymous = await fixture.test.app.inject({ method: 'GET', url: `/calls/${callId}/proof` });
    expect(anonymous.statusCode).toBe(401);
  });
});
