/**
 * Digests written out as files, one per digest (CloudTrail-style), so they can be kept where the
 * database's operator cannot reach them. Each file is the digest's JSON exactly; the name carries
 * the sequence number, zero-padded so that name order is chain order.
 */
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Digest } from './digest.ts';

const fileNamePattern = /^digest-(\d{12})\.json$/;

export const digestFileName = (sequence: number): string =>
  `digest-${String(sequence).padStart(12, '0')}.json`;

export const writeDigestFile = async (directory: string, digest: Digest): Promise<string> => {
  await mkdir(directory, { recursive: true });
  const file = path.join(directory, digestFileName(digest.sequence));
  const partial = `${file}.partial`;
  await writeFile(partial, `${JSON.stringify(digest)}\n`, { mode: 0o644 });
  await rename(partial, file);
  return file;
};

/** The digest files of a directory in chain order, as parsed JSON (the verifier judges them). */
export async function* readDigestFiles(
  directory: string,
): AsyncGenerator<{ readonly file: string; readonly data: unknown }> {
  const names = (await readdir(directory)).filter((name) => fileNamePattern.test(name)).sort();
  for (const name of names) {
    const file = path.join(directory, name);
    let data: unknown;
    try {
      data = JSON.parse(await readFile(file, 'utf8'));
    } catch {
      data = undefined;
    }
    yield { file, data };
  }
}
