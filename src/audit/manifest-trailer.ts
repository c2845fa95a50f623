/**
 * Signed manifests for streamed exports over HTTP, sent as an HTTP trailer after the last byte (the
 * file's SHA-256 is known only then): `Trailer: calltrail-manifest` is announced with the response,
 * and the trailer's value is the manifest's JSON, base64url-encoded (a header value is one line of
 * ASCII). A client that ignores trailers gets the file as before. Only when the server has the
 * sealing key; without it the response carries no trailer.
 */
import { createHash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import type { FastifyReply } from 'fastify';
import type { EventStore, GlobalPosition } from '../event-store/event-store.ts';
import { digestForManifest, signManifest, type Manifest, type ManifestKind } from '../sealing/manifest.ts';
import type { SigningKey } from '../sealing/signing-key.ts';

export const manifestTrailer = 'calltrail-manifest';

export const encodeManifestTrailer = (manifest: Manifest): string =>
  Buffer.from(JSON.stringify(manifest), 'utf8').toString('base64url');

export const decodeManifestTrailer = (value: string): unknown => {
  try {
    return JSON.parse(Buffer.from(value, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
};

/**
 * Wraps `body` so its bytes are hashed as they go out, and adds the trailer, computed once the body
 * has ended. `count` and `lastPosition` are read at that moment.
 */
export const withManifestTrailer = (
  reply: FastifyReply,
  body: Readable,
  manifest: {
    readonly kind: ManifestKind;
    readonly query: Record<string, string | null>;
    readonly key: SigningKey | undefined;
    readonly eventStore: EventStore;
    readonly clock: () => Date;
    readonly count: () => Promise<number> | number;
    readonly lastPosition?: () => GlobalPosition | undefined;
  },
): Readable => {
  const { key } = manifest;
  if (key === undefined) return body;
  const hash = createHash('sha256');
  let bytes = 0;
  const tap = new Transform({
    transform(chunk: Buffer | string, _encoding, done) {
      const buffer = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
      hash.update(buffer);
      bytes += buffer.length;
      done(null, buffer);
    },
  });
  body.on('error', (error) => tap.destroy(error));
  body.pipe(tap);
  reply.trailer(manifestTrailer, async () =>
    encodeManifestTrailer(
      signManifest(
        {
          kind: manifest.kind,
          query: manifest.query,
          createdAt: manifest.clock().toISOString(),
          count: await manifest.count(),
          bytes,
          sha256: hash.digest('hex'),
          lastDigest: await digestForManifest(manifest.eventStore, manifest.lastPosition?.()),
        },
        key,
      ),
    ),
  );
  return tap;
};
