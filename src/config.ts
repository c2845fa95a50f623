/**
 * Configuration: every `CALLTRAIL_*` environment variable, declared once, parsed and validated once
 * at start-up into a typed object. A bad value stops start-up with a message naming the variable.
 */
import { BlockList, isIP } from 'node:net';
import Type from 'typebox';
import Value from 'typebox/value';
import { maxRecordBytes } from './archive/archived-event.ts';
import { ApiTokensConfigError, loadApiTokens, type ApiToken } from './access/api-tokens.ts';
import { parseDestinations, checkForwardingSecret } from './forwarding/destinations.ts';
import { RelayConfigProblem, parseRelayConfig } from './relay/relay-config.ts';

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
  // Nothing larger can be archived as one record, so nothing larger is read.
  CALLTRAIL_BODY_LIMIT_BYTES: Type.Integer({
    minimum: 1024,
    maximum: maxRecordBytes,
    default: maxRecordBytes,
  }),
  CALLTRAIL_BODY_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 10_000 }),
  CALLTRAIL_MAX_CONCURRENT_BODIES: Type.Integer({ minimum: 1, maximum: 100_000, default: 64 }),
  CALLTRAIL_REMEMBERED_EVENT_IDS: Type.Integer({ minimum: 0, maximum: 10_000_000, default: 50_000 }),
  CALLTRAIL_HEADERS_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 10_000 }),
  CALLTRAIL_REQUEST_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 3_600_000, default: 30_000 }),
  CALLTRAIL_IDLE_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 5_000 }),
  CALLTRAIL_MAX_EVENT_LOOP_DELAY_MS: Type.Integer({ minimum: 0, maximum: 60_000, default: 1_000 }),
  CALLTRAIL_TRUST_PROXY: Type.String({ minLength: 1, default: 'false' }),
  CALLTRAIL_DATABASE_CONNECT_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 3_000 }),
  CALLTRAIL_DATABASE_STATEMENT_TIMEOUT_MS: Type.Integer({
    minimum: 100,
    maximum: 3_600_000,
    default: 30_000,
  }),
  CALLTRAIL_APPEND_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 60_000, default: 3_000 }),
  CALLTRAIL_JOURNAL_DIR: Type.Optional(Type.String({ minLength: 1 })),
  CALLTRAIL_JOURNAL_MAX_BYTES: Type.Integer({
    minimum: 1_048_576,
    maximum: 2 ** 50,
    default: 1_073_741_824,
  }),
  CALLTRAIL_LIVE_MAX_CLIENTS: Type.Integer({ minimum: 1, maximum: 100_000, default: 1_000 }),
  CALLTRAIL_LIVE_CLIENT_BUFFER_BYTES: Type.Integer({
    minimum: 16_384,
    maximum: 256 * 1024 * 1024,
    default: 4 * 1024 * 1024,
  }),
  CALLTRAIL_HEALTH_STALE_CALL_SECONDS: Type.Integer({ minimum: 60, maximum: 30 * 86_400, default: 3_600 }),
  CALLTRAIL_HEALTH_STATEMENT_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 5_000 }),
  CALLTRAIL_HEALTH_METRICS_WINDOW_SECONDS: Type.Integer({
    minimum: 60,
    maximum: 30 * 86_400,
    default: 3_600,
  }),
  CALLTRAIL_SEALING_KEY: Type.Optional(Type.String({ pattern: '-----BEGIN PRIVATE KEY-----' })),
  CALLTRAIL_SEALING_KEY_FILE: Type.Optional(Type.String({ minLength: 1 })),
  CALLTRAIL_SEAL_EVERY_EVENTS: Type.Integer({ minimum: 1, maximum: 100_000, default: 1_000 }),
  CALLTRAIL_SEAL_EVERY_SECONDS: Type.Number({ exclusiveMinimum: 0, maximum: 86_400, default: 60 }),
  CALLTRAIL_DIGEST_DIR: Type.Optional(Type.String({ minLength: 1 })),
  CALLTRAIL_FORWARD_DESTINATIONS: Type.Optional(Type.String({ minLength: 1 })),
  CALLTRAIL_FORWARD_SECRET: Type.Optional(Type.String({ minLength: 16 })),
  CALLTRAIL_FORWARD_MAX_ATTEMPTS: Type.Integer({ minimum: 1, maximum: 100, default: 21 }),
  CALLTRAIL_FORWARD_RETRY_INITIAL_MS: Type.Integer({ minimum: 10, maximum: 3_600_000, default: 10_000 }),
  CALLTRAIL_FORWARD_RETRY_MAX_MS: Type.Integer({ minimum: 10, maximum: 86_400_000, default: 7_200_000 }),
  CALLTRAIL_FORWARD_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 120_000, default: 10_000 }),
  CALLTRAIL_FORWARD_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 256, default: 64 }),
  CALLTRAIL_FORWARD_PAUSE_AFTER_FAILURES: Type.Integer({ minimum: 1, maximum: 100_000, default: 10 }),
  CALLTRAIL_FORWARD_PROBE_INTERVAL_MS: Type.Integer({ minimum: 10, maximum: 3_600_000, default: 60_000 }),
  // Relay mode (src/relay/): checked further, and the JSON ones parsed, by parseRelayConfig.
  CALLTRAIL_RELAY_URL: Type.Optional(urlWithScheme(['http', 'https'])),
  CALLTRAIL_RELAY_OVERRIDES: Type.Optional(Type.String({ minLength: 2 })),
  CALLTRAIL_RELAY_FALLBACKS: Type.Optional(Type.String({ minLength: 2 })),
  // Flireo waits 5 s for an assistant and 10 s for tool results.
  CALLTRAIL_RELAY_ASSISTANT_REQUEST_DEADLINE_MS: Type.Integer({
    minimum: 100,
    maximum: 5_000,
    default: 4_500,
  }),
  CALLTRAIL_RELAY_TOOL_CALLS_DEADLINE_MS: Type.Integer({ minimum: 100, maximum: 10_000, default: 9_500 }),
  CALLTRAIL_RELAY_ARCHIVE_BUDGET_MS: Type.Integer({ minimum: 10, maximum: 5_000, default: 200 }),
  CALLTRAIL_RELAY_MAX_RESPONSE_BYTES: Type.Integer({
    minimum: 1024,
    maximum: 64 * 1024 * 1024,
    default: 1_048_576,
  }),
  // Kept whole in the exchange record, which must fit one record beside its metadata.
  CALLTRAIL_RELAY_ARCHIVED_RESPONSE_BYTES: Type.Integer({ minimum: 0, maximum: 131_072, default: 65_536 }),
  // Hold each answer until its exchange record is durable (a crash then loses no exchange; slower).
  CALLTRAIL_RELAY_RECORD_BEFORE_ANSWER: Type.Boolean({ default: false }),
  // Named tokens with roles (src/access/api-tokens.ts), checked further by loadApiTokens.
  CALLTRAIL_API_TOKENS: Type.Optional(Type.String({ minLength: 1 })),
  CALLTRAIL_API_TOKENS_FILE: Type.Optional(Type.String({ minLength: 1 })),
});
type Env = Type.Static<typeof Env>;

export type TrustProxy = false | readonly string[];

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/**
 * The shape callers use, grouped by concern; its type is derived from this mapping, so each setting
 * is declared once, in the schema above.
 */
const toConfig = (env: Env) =>
  ({
    /** Relay mode: undefined without `CALLTRAIL_RELAY_URL` (nothing is relayed). */
    relay: relayConfigOf(env),
    /** Unset: the embedded default (or `databaseUrl`'s Postgres) is the event store. */
    eventStoreUrl: env.CALLTRAIL_EVENTSTORE_URL,
    databaseUrl: env.CALLTRAIL_DATABASE_URL,
    dataDir: env.CALLTRAIL_DATA_DIR,
    host: env.CALLTRAIL_HOST,
    port: env.CALLTRAIL_PORT,
    /** The address Flireo reaches this server at, for printing webhook URLs. */
    publicUrl: env.CALLTRAIL_PUBLIC_URL,
    // Validated above; typed as a plain string, as pino takes it, for callers that build their own.
    logLevel: env.CALLTRAIL_LOG_LEVEL as string,
    webhook: {
      secret: env.CALLTRAIL_WEBHOOK_SECRET,
      token: env.CALLTRAIL_WEBHOOK_TOKEN,
      insecure: env.CALLTRAIL_INSECURE_WEBHOOKS,
      signatureToleranceSeconds: env.CALLTRAIL_SIGNATURE_TOLERANCE_SECONDS,
      bodyLimitBytes: env.CALLTRAIL_BODY_LIMIT_BYTES,
      /** Bound on reading one webhook body, from its first awaited byte to its last. */
      bodyTimeoutMs: env.CALLTRAIL_BODY_TIMEOUT_MS,
      /** Webhook bodies read at once; past it, 503. */
      maxConcurrentBodies: env.CALLTRAIL_MAX_CONCURRENT_BODIES,
      /** Event ids the idempotent append remembers across all streams (a cache: 0 reads every time). */
      rememberedEventIds: env.CALLTRAIL_REMEMBERED_EVENT_IDS,
    },
    appendTimeoutMs: env.CALLTRAIL_APPEND_TIMEOUT_MS,
    /** The outage journal: its root directory (default `<dataDir>/journal`) and size limit. */
    journal: { dir: env.CALLTRAIL_JOURNAL_DIR, maxBytes: env.CALLTRAIL_JOURNAL_MAX_BYTES },
    /** Named tokens with roles, from the variable and the tokens file. */
    apiTokens: loadApiTokens({
      variable: env.CALLTRAIL_API_TOKENS,
      file: env.CALLTRAIL_API_TOKENS_FILE,
    }) as readonly ApiToken[],
    http: {
      /** Fastify's `trustProxy`: false, or the proxies' addresses and CIDR ranges. */
      trustProxy: parseTrustProxy(env.CALLTRAIL_TRUST_PROXY),
      headersTimeoutMs: env.CALLTRAIL_HEADERS_TIMEOUT_MS,
      /** Bound on receiving a whole request, headers and body. */
      requestTimeoutMs: env.CALLTRAIL_REQUEST_TIMEOUT_MS,
      /** How long a kept-alive connection may sit idle between requests. */
      idleTimeoutMs: env.CALLTRAIL_IDLE_TIMEOUT_MS,
      /** Past this mean event-loop delay, requests are answered 503; 0 never. */
      maxEventLoopDelayMs: env.CALLTRAIL_MAX_EVENT_LOOP_DELAY_MS,
    },
    /** Bounds on every read-model database call. */
    readModels: {
      connectTimeoutMs: env.CALLTRAIL_DATABASE_CONNECT_TIMEOUT_MS,
      statementTimeoutMs: env.CALLTRAIL_DATABASE_STATEMENT_TIMEOUT_MS,
    },
    /** `GET /live`: clients at once, and how much may wait unsent for one client before it is dropped. */
    live: {
      maxClients: env.CALLTRAIL_LIVE_MAX_CLIENTS,
      clientBufferBytes: env.CALLTRAIL_LIVE_CLIENT_BUFFER_BYTES,
    },
    /** Integration health (`GET /health`, its metrics and console page). */
    health: {
      /** An in-progress call whose last event is older than this is reported stale (a missed webhook). */
      staleCallSeconds: env.CALLTRAIL_HEALTH_STALE_CALL_SECONDS,
      /** Bound on each health statement. */
      statementTimeoutMs: env.CALLTRAIL_HEALTH_STATEMENT_TIMEOUT_MS,
      /** The period the health metrics cover, ending at the scrape. */
      metricsWindowSeconds: env.CALLTRAIL_HEALTH_METRICS_WINDOW_SECONDS,
    },
    sealing: {
      /** PKCS#8 PEM of the Ed25519 signing key, given directly or as a file. */
      key: env.CALLTRAIL_SEALING_KEY,
      keyFile: env.CALLTRAIL_SEALING_KEY_FILE,
      maxEvents: env.CALLTRAIL_SEAL_EVERY_EVENTS,
      maxSeconds: env.CALLTRAIL_SEAL_EVERY_SECONDS,
      /** Where digest files are written; undefined: none. */
      digestDirectory: env.CALLTRAIL_DIGEST_DIR,
    },
    forwarding: {
      /** The extra destinations; the relay destination is added by `forwardingDestinations`. */
      destinations: parseDestinations(env.CALLTRAIL_FORWARD_DESTINATIONS),
      secret: env.CALLTRAIL_FORWARD_SECRET,
      retry: {
        maxAttempts: env.CALLTRAIL_FORWARD_MAX_ATTEMPTS,
        initialDelayMs: env.CALLTRAIL_FORWARD_RETRY_INITIAL_MS,
        maxDelayMs: env.CALLTRAIL_FORWARD_RETRY_MAX_MS,
      },
      timeoutMs: env.CALLTRAIL_FORWARD_TIMEOUT_MS,
      concurrency: env.CALLTRAIL_FORWARD_CONCURRENCY,
      pauseAfterFailures: env.CALLTRAIL_FORWARD_PAUSE_AFTER_FAILURES,
      probeIntervalMs: env.CALLTRAIL_FORWARD_PROBE_INTERVAL_MS,
    },
  }) as const;

export type Config = ReturnType<typeof toConfig>;

const relayConfigOf = (env: Env) =>
  parseRelayConfig({
    url: env.CALLTRAIL_RELAY_URL,
    overrides: env.CALLTRAIL_RELAY_OVERRIDES,
    fallbacks: env.CALLTRAIL_RELAY_FALLBACKS,
    assistantRequestDeadlineMs: env.CALLTRAIL_RELAY_ASSISTANT_REQUEST_DEADLINE_MS,
    toolCallsDeadlineMs: env.CALLTRAIL_RELAY_TOOL_CALLS_DEADLINE_MS,
    archiveBudgetMs: env.CALLTRAIL_RELAY_ARCHIVE_BUDGET_MS,
    maxResponseBytes: env.CALLTRAIL_RELAY_MAX_RESPONSE_BYTES,
    archivedResponseBytes: env.CALLTRAIL_RELAY_ARCHIVED_RESPONSE_BYTES,
    recordBeforeAnswer: env.CALLTRAIL_RELAY_RECORD_BEFORE_ANSWER,
    listenHost: env.CALLTRAIL_HOST,
    listenPort: env.CALLTRAIL_PORT,
    publicUrl: env.CALLTRAIL_PUBLIC_URL,
  });
export type LiveConfig = Config['live'];
export type ForwardingConfig = Config['forwarding'];

/** An address or a CIDR range of either family; throws naming the entry. */
const checkProxyAddress = (entry: string): void => {
  const [address = '', prefix, ...rest] = entry.split('/');
  const family = isIP(address);
  if (family === 0 || rest.length > 0) throw new Error(`${JSON.stringify(entry)} is not an address or CIDR`);
  if (prefix === undefined) return;
  const bits = /^\d{1,3}$/.test(prefix) ? Number(prefix) : -1;
  if (bits < 0 || bits > (family === 4 ? 32 : 128)) {
    throw new Error(`${JSON.stringify(entry)} has an invalid prefix length`);
  }
  new BlockList().addSubnet(address, bits, family === 4 ? 'ipv4' : 'ipv6');
};

/** proxy-addr's names for whole ranges, which Fastify accepts beside addresses. */
const proxyRangeNames = new Set(['loopback', 'linklocal', 'uniquelocal']);

/**
 * `false` (the default: the connecting address is the sender), or a comma-separated list of the
 * proxies' addresses, CIDR ranges, or `loopback`, `linklocal`, `uniquelocal`. Only a connection
 * from one of them may name the sender in X-Forwarded-For, hop by hop from the right. `true` (trust
 * anyone) is refused: any client could then name any sender; so are hop counts, which Fastify
 * cannot check against the connecting address.
 */
export const parseTrustProxy = (value: string): TrustProxy => {
  const trimmed = value.trim();
  if (trimmed === 'false') return false;
  if (trimmed === 'true' || /^\d+$/.test(trimmed)) {
    throw new Error(
      "give the proxies' addresses or CIDR ranges (any client could otherwise name any sender)",
    );
  }
  const entries = trimmed.split(',').map((entry) => entry.trim());
  for (const entry of entries) if (!proxyRangeNames.has(entry)) checkProxyAddress(entry);
  return entries;
};

const describeValue = (name: string, value: unknown): string =>
  /SECRET|TOKEN|SEALING_KEY$|RELAY_URL|RELAY_OVERRIDES/.test(name) ? '(hidden)' : JSON.stringify(value);

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
  const env = converted as Env;
  try {
    parseTrustProxy(env.CALLTRAIL_TRUST_PROXY);
  } catch (error) {
    throw new ConfigError(
      `invalid configuration:\n  CALLTRAIL_TRUST_PROXY=${JSON.stringify(env.CALLTRAIL_TRUST_PROXY)}: ${(error as Error).message}`,
    );
  }
  if (env.CALLTRAIL_HEADERS_TIMEOUT_MS > env.CALLTRAIL_REQUEST_TIMEOUT_MS) {
    throw new ConfigError(
      `invalid configuration:\n  CALLTRAIL_HEADERS_TIMEOUT_MS=${env.CALLTRAIL_HEADERS_TIMEOUT_MS}: must not exceed CALLTRAIL_REQUEST_TIMEOUT_MS (${env.CALLTRAIL_REQUEST_TIMEOUT_MS})`,
    );
  }
  const invalid = (name: string, value: unknown, message: string) =>
    new ConfigError(`invalid configuration:\n  ${name}=${describeValue(name, value)}: ${message}`);
  try {
    parseDestinations(env.CALLTRAIL_FORWARD_DESTINATIONS);
  } catch (error) {
    throw invalid(
      'CALLTRAIL_FORWARD_DESTINATIONS',
      env.CALLTRAIL_FORWARD_DESTINATIONS,
      (error as Error).message,
    );
  }
  try {
    checkForwardingSecret(
      parseDestinations(env.CALLTRAIL_FORWARD_DESTINATIONS),
      env.CALLTRAIL_FORWARD_SECRET,
    );
  } catch (error) {
    throw invalid('CALLTRAIL_FORWARD_SECRET', env.CALLTRAIL_FORWARD_SECRET, (error as Error).message);
  }
  if (env.CALLTRAIL_FORWARD_RETRY_INITIAL_MS > env.CALLTRAIL_FORWARD_RETRY_MAX_MS) {
    throw invalid(
      'CALLTRAIL_FORWARD_RETRY_INITIAL_MS',
      env.CALLTRAIL_FORWARD_RETRY_INITIAL_MS,
      `must not exceed CALLTRAIL_FORWARD_RETRY_MAX_MS (${env.CALLTRAIL_FORWARD_RETRY_MAX_MS})`,
    );
  }
  try {
    return toConfig(env);
  } catch (error) {
    if (!(error instanceof RelayConfigProblem) && !(error instanceof ApiTokensConfigError)) throw error;
    throw new ConfigError(`invalid configuration:\n  ${error.variable}: ${error.message}`);
  }
};
