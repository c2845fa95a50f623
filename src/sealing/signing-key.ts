/**
 * The sealer's Ed25519 key. Production gives it as PKCS#8 PEM in an environment variable or a file;
 * the embedded default generates one in the data directory on first start and keeps it there. The
 * key id is the first 16 hex digits of SHA-256 over the public key's DER (SPKI), so a verifier
 * holding several public keys knows which one a digest names.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

export interface SigningKey {
  readonly keyId: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** SPKI PEM: what a verifier needs. */
  readonly publicKeyPem: string;
}

export interface PublicKey {
  readonly keyId: string;
  readonly publicKey: KeyObject;
}

export class SigningKeyError extends Error {
  override readonly name = 'SigningKeyError';
}

export const signingKeyFileName = 'sealing-key.pem';

export const keyIdOf = (publicKey: KeyObject): string =>
  createHash('sha256')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex')
    .slice(0, 16);

const fromPrivateKey = (privateKey: KeyObject, source: string): SigningKey => {
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new SigningKeyError(
      `${source} is a ${privateKey.asymmetricKeyType ?? 'unknown'} key; an Ed25519 key is needed`,
    );
  }
  const publicKey = createPublicKey(privateKey);
  return {
    keyId: keyIdOf(publicKey),
    privateKey,
    publicKey,
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
};

export const parseSigningKey = (pem: string, source: string): SigningKey => {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch (error) {
    throw new SigningKeyError(`${source} is not a PEM private key`, { cause: error });
  }
  return fromPrivateKey(privateKey, source);
};

/** A public key from SPKI PEM (what `calltrail verify --public-key` reads). */
export const parsePublicKey = (pem: string, source: string): PublicKey => {
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey(pem);
  } catch (error) {
    throw new SigningKeyError(`${source} is not a PEM public key`, { cause: error });
  }
  if (publicKey.asymmetricKeyType !== 'ed25519') {
    throw new SigningKeyError(`${source} is not an Ed25519 public key`);
  }
  return { keyId: keyIdOf(publicKey), publicKey };
};

const rawPublicKeyPattern = /^[0-9a-fA-F]{64}$/;

/** A public key given as SPKI PEM, or as the 32 raw bytes of an Ed25519 key in hex. */
export const parsePublicKeyText = (text: string, source: string): PublicKey => {
  const trimmed = text.trim();
  if (!rawPublicKeyPattern.test(trimmed)) return parsePublicKey(trimmed, source);
  const publicKey = createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(trimmed, 'hex').toString('base64url') },
    format: 'jwk',
  });
  return { keyId: keyIdOf(publicKey), publicKey };
};

/** The 32 raw bytes of an Ed25519 public key, hex: the short form `--public-key` also takes. */
export const rawPublicKeyHex = (publicKey: KeyObject): string =>
  Buffer.from(publicKey.export({ format: 'jwk' }).x ?? '', 'base64url').toString('hex');

export const generateSigningKey = (): SigningKey => {
  const { privateKey } = generateKeyPairSync('ed25519');
  return fromPrivateKey(privateKey, 'the generated key');
};

/** Reads the key kept in `dataDir`, generating and keeping one (mode 0600) on first use. */
export const loadOrCreateSigningKey = async (
  dataDir: string,
): Promise<{ key: SigningKey; created: boolean; file: string }> => {
  const file = path.join(dataDir, signingKeyFileName);
  try {
    return { key: parseSigningKey(await readFile(file, 'utf8'), file), created: false, file };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const key = generateSigningKey();
  await mkdir(dataDir, { recursive: true });
  const pem = key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  try {
    // `wx`: two processes starting at once must not overwrite each other's key.
    await writeFile(file, pem, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return { key: parseSigningKey(await readFile(file, 'utf8'), file), created: false, file };
  }
  return { key, created: true, file };
};

export const signBytes = (key: SigningKey, bytes: Buffer): string =>
  sign(null, bytes, key.privateKey).toString('base64');

export const verifyBytes = (key: PublicKey, bytes: Buffer, signature: string): boolean => {
  const signatureBytes = Buffer.from(signature, 'base64');
  if (signatureBytes.length !== 64) return false;
  return verify(null, bytes, key.publicKey, signatureBytes);
};
