/**
 * Configuration: every `CALLTRAIL_*` environment variable, declared once, parsed and validated once
 * at start-up into a typed object. A bad value stops start-up with a message naming the variable.
 */
import Type from 'typebox';
import Value from 'typebox/value';

const urlWithScheme = (schemes: readonly string[]) =>
  Type.String({ pattern: `^(${schemes.map((s) => s.replace(/\+/g, '\\+')).join('|')})://` });

const eventStoreSchemes = [
  'esdb',
  'esdb+discover',
  'kurrentdb',
  'kurrentdb+discover',
  'postgres',
  'postgresql',
];

const Env = Type.Object({
  CALLTRAIL_EVENTSTORE_URL: Type.Optional(urlWithScheme(eventStoreSchemes)),
  CALLTRAIL_DATABASE_URL: Type.Optional(urlWithScheme(['postgres', 'postgresql'])),
  CALLTRAIL_DATA_DIR: Type.String({ minLength: 1, default: './.calltrail' }),
  CALLTRAIL_HOST: Type.String({ minLength: 1, default: '0.0.0.0' }),
  CALLTRAIL_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000 }),
  CALLTRAIL_PUBLIC_URL: Type.Optional(urlWithScheme(['http', 'https'])),
  CALLTRAIL_LOG_LEVEL: Type.Enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
    default: 'info',
  }),
  CALLTRAIL_WEBHOOK_SECRET: Type.Optional(Type.String({ minLength: 16 })),
  CALLTRAIL_WEBHOOK_TOKEN: Type.Optional(Type.String({ minLength: 16, pattern: '^[A-Za-z0-9._~-]+$' })),
  CALLTRAIL_INSECURE_WEBHOOKS: Type.Boolean({ default: false }),
  CALLTRAIL_SIGNATURE_TOLERANCE_SECONDS: Type.Integer({ minimum: 1, maximum: 86_400, default: 300 }),
  CALLTRAIL_BODY_LIMIT_BYTES: Type.Integer({ minimum: 1024, maximum: 64 * 1024 * 1024, default: 1_048_576 }),
  CALLTRAIL_APPEND_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 60_000, default: 3_000 }),
  CALLTRAIL_SEALING_KEY: Type.Optional(Type.String({ pattern: '-----BEGIN PRIVATE KEY-----' })),
  CALLTRAIL_SEALING_KEY_FILE: Type.Optional(Type.String({ minLength: 1 })),
  CALLTRAIL_SEAL_EVERY_EVENTS: Type.Integer({ minimum: 1, maximum: 100_000, default: 1_000 }),
  CALLTRAIL_SEAL_EVERY_SECONDS: Type.Number({ exclusiveMinimum: 0, maximum: 86_400, default: 60 }),
  CALLTRAIL_DIGEST_DIR: Type.Optional(Type.String({ minLength: 1 })),
  CALLTRAIL_API_TOKENS: Type.Optional(
    Type.String({ pattern: '^[A-Za-z0-9._~-]{16,}(,[A-Za-z0-9._~-]{16,})*$' }),
  ),
});
type Env = Type.Static<typeof Env>;

export interface Config {
  /** Unset: the embedded default (or `databaseUrl`'s Postgres) is the event store. */
  readonly eventStoreUrl: string | undefined;
  readonly databaseUrl: string | undefined;
  readonly dataDir: string;
  readonly host: string;
  readonly port: number;
  /** The address Flireo reaches this server at, for printing webhook URLs. */
  readonly publicUrl: string | undefined;
  readonly logLevel: string;
  readonly webhook: {
    readonly secret: string | undefined;
    readonly token: string | undefined;
    readonly insecure: boolean;
    readonly signatureToleranceSeconds: number;
    readonly bodyLimitBytes: number;
  };
  readonly appendTimeoutMs: number;
  readonly apiTokens: readonly string[];
  /** Absent in hand-built configurations: sealing then runs only with the embedded default's key. */
  readonly sealing?: {
    /** PKCS#8 PEM of the Ed25519 signing key, given directly or as a file. */
    readonly key: string | undefined;
    readonly keyFile: string | undefined;
    readonly maxEvents: number;
    readonly maxSeconds: number;
    /** Where digest files are written; undefined: none. */
    readonly digestDirectory: string | undefined;
  };
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

const toConfig = (env: Env): Config => ({
  eventStoreUrl: env.CALLTRAIL_EVENTSTORE_URL,
  databaseUrl: env.CALLTRAIL_DATABASE_URL,
  dataDir: env.CALLTRAIL_DATA_DIR,
  host: env.CALLTRAIL_HOST,
  port: env.CALLTRAIL_PORT,
  publicUrl: env.CALLTRAIL_PUBLIC_URL,
  logLevel: env.CALLTRAIL_LOG_LEVEL,
  webhook: {
    secret: env.CALLTRAIL_WEBHOOK_SECRET,
    token: env.CALLTRAIL_WEBHOOK_TOKEN,
    insecure: env.CALLTRAIL_INSECURE_WEBHOOKS,
    signatureToleranceSeconds: env.CALLTRAIL_SIGNATURE_TOLERANCE_SECONDS,
    bodyLimitBytes: env.CALLTRAIL_BODY_LIMIT_BYTES,
  },
  appendTimeoutMs: env.CALLTRAIL_APPEND_TIMEOUT_MS,
  apiTokens: env.CALLTRAIL_API_TOKENS?.split(',') ?? [],
  sealing: {
    key: env.CALLTRAIL_SEALING_KEY,
    keyFile: env.CALLTRAIL_SEALING_KEY_FILE,
    maxEvents: env.CALLTRAIL_SEAL_EVERY_EVENTS,
    maxSeconds: env.CALLTRAIL_SEAL_EVERY_SECONDS,
    digestDirectory: env.CALLTRAIL_DIGEST_DIR,
  },
});

const describeValue = (name: string, value: unknown): string =>
  /SECRET|TOKEN|SEALING_KEY$/.test(name) ? '(hidden)' : JSON.stringify(value);

/** Throws `ConfigError` naming every bad variable. Empty strings count as unset. */
export const loadConfig = (source: NodeJS.ProcessEnv): Config => {
  const known = Object.keys(Env.properties);
  const present = Object.fromEntries(
    Object.entries(source).filter(
      ([name, value]) => known.includes(name) && value !== undefined && value !== '',
    ),
  );
  // A misspelt variable would otherwise be silently ignored; the test harness's own are not ours.
  const unknown = Object.keys(source).filter(
    (name) => name.startsWith('CALLTRAIL_') && !name.startsWith('CALLTRAIL_TEST_') && !known.includes(name),
  );
  const converted = Value.Convert(Env, Value.Default(Env, present));
  // One line per variable: the first thing wrong with it is enough to fix it.
  const byVariable = new Map<string, string>();
  for (const error of Value.Errors(Env, converted)) {
    const name = error.instancePath.replace(/^\//, '') || 'environment';
    if (!byVariable.has(name))
      byVariable.set(name, `${name}=${describeValue(name, present[name])}: ${error.message}`);
  }
  const problems = [...byVariable.values()];
  if (problems.length > 0) {
    throw new ConfigError(`invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  if (unknown.length > 0) {
    throw new ConfigError(`unknown configuration variable(s): ${unknown.join(', ')}`);
  }
  return toConfig(converted as Env);
};
