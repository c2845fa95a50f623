/**
 * Evidence bundles and replay files verified offline, on both event stores: a call archived through
 * the signed webhook and sealed, exported as a bundle and as JSON lines, verifies clean against the
 * public key and the digest files, Flireo's signatures included; a one-byte change in any section of
 * the bundle, or in a replay line, fails with a named finding.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callStreamName } from '../../src/archive/streams.ts';
import { readCall } from '../../src/audit/archive-reader.ts';
import { toJsonLine } from '../../src/audit/archived-event-view.ts';
import { runEvidenceExport } from '../../src/cli/export-evidence.ts';
import { runOfflineVerify } from '../../src/cli/verify.ts';
import { readDigestFiles, writeDigestFile } from '../../src/sealing/digest-files.ts';
import { readDigestEvents } from '../../src/sealing/digest-stream.ts';
import { isDigest } from '../../src/sealing/digest.ts';
import type { EvidenceBundle } from '../../src/sealing/evidence.ts';
import { verifyOffline, type OfflineReport } from '../../src/sealing/offline-verify.ts';
import { rawPublicKeyHex } from '../../src/sealing/signing-key.ts';
import { testWebhookSecret } from '../support/app.ts';
import { eventStoreKinds } from '../audit/support.ts';
import { openSealedCallFixture, type SealedCallFixture } from './sealed-call.ts';

const digestEntries = (directory: string) =>
  (async function* () {
    for await (const entry of readDigestFiles(directory))
      yield { where: entry.file, type: 'archive-digest', data: entry.data };
  })();

/** Replaces the one character at `offset` with another of the same byte length. */
const changeOneByte = (text: string, offset: number): string => {
  const current = text[offset]!;
  const replacement = /[0-9]/.test(current) ? (current === '0' ? '1' : '0') : current === 'a' ? 'b' : 'a';
  return `${text.slice(0, offset)}${replacement}${text.slice(offset + 1)}`;
};

describe.each(eventStoreKinds)('offline verification on %s', (kind) => {
  let fixture: SealedCallFixture;
  let directory: string;
  let digests: string;
  let bundleFile: string;
  let bundleText: string;
  const callId = `evidence-${crypto.randomUUID()}`;

  beforeAll(async () => {
    fixture = await openSealedCallFixture(kind);
    directory = await mkdtemp(path.join(tmpdir(), 'calltrail-evidence-'));
    digests = path.join(directory, 'digests');
    for (let index = 0; index < 6; index += 1) await fixture.post(callId);
    await fixture.post(callId, { token: true });
    await fixture.post(`other-${crypto.randomUUID()}`);
    await fixture.sealEverything();
    for await (const entry of readDigestEvents(fixture.stores.eventStore))
      if (isDigest(entry.data)) await writeDigestFile(digests, entry.data);
    bundleFile = path.join(directory, 'call.evidence.json');
    const result = await runEvidenceExport(
      { callId, out: bundleFile },
      { eventStore: fixture.stores.eventStore, key: fixture.key, now: new Date() },
    );
    expect(result).toEqual({ events: 7, unsealed: 0 });
    bundleText = await readFile(bundleFile, 'utf8');
  }, 60_000);
  afterAll(async () => {
    await fixture?.close();
    if (directory !== undefined) await rm(directory, { recursive: true, force: true });
  });

  const verify = (file: string, options: { secret?: string; withDigests?: boolean } = {}) =>
    verifyOffline({
      file,
      keys: new Map([[fixture.key.keyId, fixture.key]]),
      ...(options.withDigests === false ? {} : { digests: digestEntries(digests) }),
      ...(options.secret === undefined ? {} : { webhookSecret: options.secret }),
    });

  const kinds = (report: OfflineReport) =>
    [...new Set(report.findings.map((finding) => finding.kind))].sort();

  it('verifies the evidence bundle clean, with and without digest files, Flireo signatures included', async () => {
    const report = await verify(bundleFile, { secret: testWebhookSecret });
    expect(report.findings).toEqual([]);
    expect(report).toMatchObject({ ok: true, eventsChecked: 7, unsealedEvents: 0 });
    expect(report.webhookSignatures).toEqual({ checked: 6, valid: 6, notSigned: 1 });
    expect((await verify(bundleFile, { withDigests: false })).ok).toBe(true);
  });

  it('through the command: exit 0 with a hex key, 1 with the wrong webhook secret, 2 without a key', async () => {
    const sink = () => {
      const chunks: string[] = [];
      return {
        chunks,
        write: (chunk: string) => {
          chunks.push(chunk);
          return true;
        },
      } as unknown as NodeJS.WritableStream & { chunks: string[] };
    };
    const hex = rawPublicKeyHex(fixture.key.publicKey);
    const out = sink();
    expect(
      await runOfflineVerify(
        bundleFile,
        { publicKey: [hex], digests, json: true },
        { stdout: out, stderr: sink() },
      ),
    ).toBe(0);
    expect(JSON.parse(out.chunks.join('')) as OfflineReport).toMatchObject({ ok: true });
    const wrong = sink();
    expect(
      await runOfflineVerify(
        bundleFile,
        { publicKey: [hex], webhookSecret: 'another-secret-0123456789' },
        { stdout: wrong, stderr: sink() },
      ),
    ).toBe(1);
    expect(wrong.chunks.join('')).toMatch(/WEBHOOK-SIGNATURE/);
    const errors = sink();
    expect(await runOfflineVerify(bundleFile, { publicKey: [] }, { stdout: sink(), stderr: errors })).toBe(2);
    expect(errors.chunks.join('')).toMatch(/--public-key/);
  });

  it('fails with a named finding for a one-byte change in every section of the bundle', async () => {
    const bundle = JSON.parse(bundleText) as EvidenceBundle;
    const at = (needle: string, from = 0) => {
      const offset = bundleText.indexOf(needle, from);
      expect(offset).toBeGreaterThanOrEqual(0);
      return offset;
    };
    const events = at('"events"');
    const proofs = at('"proofs"');
    const digestsSection = at('"digests"', proofs);
    const cases: { section: string; offset: number; expected: string }[] = [
      { section: 'exportedAt', offset: at(bundle.exportedAt) + 3, expected: 'bundle-signature' },
      { section: 'publicKey.hex', offset: at(bundle.publicKey.hex) + 5, expected: 'public-key-mismatch' },
      { section: 'events: raw body', offset: at('"rawBody"', events) + 20, expected: 'line-altered' },
      { section: 'events: storedAt', offset: at('"storedAt"', events) + 16, expected: 'bundle-signature' },
      { section: 'events: storedData', offset: at('"storedData"', events) + 40, expected: 'modified' },
      {
        section: 'proofs: audit path',
        offset: at('"', at('"auditPath"', proofs) + '"auditPath"'.length) + 5,
        expected: 'proof-invalid',
      },
      {
        section: 'digests: Merkle root',
        offset: at('"merkleRoot"', digestsSection) + 20,
        expected: 'bad-signature',
      },
      {
        section: 'signature',
        offset: at('"value"', at('"signature": {', digestsSection)) + 12,
        expected: 'bundle-signature',
      },
      { section: 'format', offset: at('"calltrail-evidence"') + 3, expected: 'malformed-file' },
    ];
    for (const each of cases) {
      const file = path.join(directory, `changed-${each.section.replace(/[^a-z]+/g, '-')}.json`);
      await writeFile(file, changeOneByte(bundleText, each.offset));
      const report = await verify(file, { secret: testWebhookSecret });
      expect(report.ok, each.section).toBe(false);
      expect(kinds(report), each.section).toContain(each.expected);
    }
  });

  it('verifies a replay file of the call clean, and names a changed, removed or unsealed line', async () => {
    const lines: string[] = [];
    for await (const event of readCall(fixture.stores.eventStore, callId)) lines.push(toJsonLine(event));
    const file = path.join(directory, 'call.jsonl');
    await writeFile(file, lines.join(''));
    const clean = await verify(file, { secret: testWebhookSecret });
    expect(clean.findings).toEqual([]);
    expect(clean).toMatchObject({
      ok: true,
      eventsChecked: 7,
      webhookSignatures: { valid: 6, notSigned: 1 },
    });

    const second = lines[1]!;
    const changes: { name: string; lines: string[]; expected: string }[] = [
      {
        name: 'raw body',
        lines: [lines[0]!, changeOneByte(second, second.indexOf('"rawBody"') + 20), ...lines.slice(2)],
        expected: 'line-altered',
      },
      {
        name: 'stored data',
        lines: [lines[0]!, changeOneByte(second, second.indexOf('"storedData"') + 40), ...lines.slice(2)],
        expected: 'modified',
      },
      { name: 'swapped', lines: [lines[1]!, lines[0]!, ...lines.slice(2)], expected: 'reordered' },
    ];
    for (const change of changes) {
      const changed = path.join(directory, `changed-${change.name.replace(/ /g, '-')}.jsonl`);
      await writeFile(changed, change.lines.join(''));
      const report = await verify(changed);
      expect(report.ok, change.name).toBe(false);
      expect(kinds(report), change.name).toContain(change.expected);
    }

    await fixture.post(callId, { status: 'ended' });
    const withTail: string[] = [];
    for await (const event of readCall(fixture.stores.eventStore, callId)) withTail.push(toJsonLine(event));
    const tail = path.join(directory, 'tail.jsonl');
    await writeFile(tail, withTail.join(''));
    const report = await verify(tail);
    expect(report).toMatchObject({ ok: false, unsealedEvents: 1 });
    expect(report.findings.map((finding) => [finding.kind, finding.stream])).toEqual([
      ['unsealed', callStreamName(callId)],
    ]);
  });
});
