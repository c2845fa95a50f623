/**
 * Relay mode's configuration: where the customer's own handler is (one URL, and per assistant number
 * another), how long each answering event type may take, how much of an answer is read and archived,
 * and the optional fallbacks. The environment variables are declared in `src/config.ts`; the parts
 * that are JSON or depend on one another are checked here, each error naming its variable.
 */
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import Type from 'typebox';
import Value from 'typebox/value';

/** The event types Flireo expects an answer to, and so the ones relayed. */
export const relayedEventTypes = ['assistant-request', 'tool-calls'] as const;
export type RelayedEventType = (typeof relayedEventTypes)[number];

export const isRelayedEventType = (type: string): type is RelayedEventType =>
  (relayedEventTypes as readonly string[]).includes(type);

const HttpUrl = Type.String({ pattern: '^https?://' });

/** `{"<assistant number>": "<url>"}`: the assistant's number as Flireo sends it (E.164). */
export const RelayOverrides = Type.Record(Type.String({ minLength: 1, maxLength: 64 }), HttpUrl, {
  maxProperties: 10_000,
});

/**
 * What calltrail answers itself when the destination fails or misses the deadline: for
 * `assistant-request` a fixed assistant (the body's `assistant`), for `tool-calls` a fixed result per
 * tool name (a tool without one gets no fallback, and the call the problem answer).
 */
export const RelayFallbacks = Type.Object(
  {
    assistantRequest: Type.Optional(Type.Object({ assistant: Type.Record(Type.String(), Type.Unknown()) })),
    toolCalls: Type.Optional(Type.Record(Type.String({ minLength: 1 }), Type.Unknown())),
  },
  { additionalProperties: false },
);
export type RelayFallbacks = Type.Static<typeof RelayFallbacks>;

export interface RelayConfig {
  /** The customer's handler, for every assistant without an override. */
  readonly url: URL;
  /** Assistant number -> handler. */
  readonly overrides: ReadonlyMap<string, URL>;
  readonly deadlineMs: Readonly<Record<RelayedEventType, number>>;
  /** How long archiving the request may take before forwarding starts; past it, it is journaled. */
  readonly archiveBudgetMs: number;
  /** The largest answer read from the destination; a larger one is a failure (`too-large`). */
  readonly maxResponseBytes: number;
  /** The largest answer body kept whole in the exchange record; beyond it, its SHA-256 and length. */
  readonly archivedResponseBytes: number;
  readonly fallbacks: RelayFallbacks;
  /**
   * Whether an answer waits until its exchange record is durable (store or journal). Without it the
   * record is written as the answer goes out, and a crash in between loses the record (never the
   * request, which is durable before anything is answered).
   */
  readonly recordBeforeAnswer: boolean;
}

export interface RelayEnvironment {
  readonly url: string | undefined;
  readonly overrides: string | undefined;
  readonly fallbacks: string | undefined;
  readonly assistantRequestDeadlineMs: number;
  readonly toolCallsDeadlineMs: number;
  readonly archiveBudgetMs: number;
  readonly maxResponseBytes: number;
  readonly archivedResponseBytes: number;
  /** `CALLTRAIL_RELAY_RECORD_BEFORE_ANSWER`; false when not given. */
  readonly recordBeforeAnswer?: boolean;
  /** calltrail's own listen address and public URL: a destination there would loop. */
  readonly listenHost: string;
  readonly listenPort: number;
  readonly publicUrl: string | undefined;
}

/** A problem with one variable; the caller reports it as a configuration error. */
export class RelayConfigProblem extends Error {
  override readonly name = 'RelayConfigProblem';
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(message);
  }
}

const parseUrl = (variable: string, text: string): URL => {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new RelayConfigProblem(variable, 'is not a URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new RelayConfigProblem(
      variable,
      `${JSON.stringify(url.protocol)}: only http and https are relayed to`,
    );
  }
  if (url.hash !== '') throw new RelayConfigProblem(variable, 'must not have a #fragment');
  return url;
};

const parseJson = <T extends Type.TSchema>(variable: string, text: string, schema: T): Type.Static<T> => {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new RelayConfigProblem(variable, `not JSON: ${(error as Error).message}`);
  }
  const [first] = Value.Errors(schema, value);
  if (first !== undefined) {
    throw new RelayConfigProblem(variable, `${first.instancePath || '(top)'}: ${first.message}`);
  }
  return value as Type.Static<T>;
};

const defaultPort = (url: URL): number =>
  url.port !== '' ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;

/** Host names that mean this machine. */
const isLocalHost = (host: string, listenHost: string): boolean => {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (bare === 'localhost' || bare.endsWith('.localhost') || bare === hostname().toLowerCase()) return true;
  if (bare === listenHost.toLowerCase()) return true;
  if (isIP(bare) === 4) return bare.startsWith('127.') || bare === '0.0.0.0';
  if (isIP(bare) === 6) return bare === '::1' || bare === '::' || bare === '::ffff:127.0.0.1';
  return false;
};

/**
 * A destination that is calltrail itself would send every relayed request round again (and answer
 * Flireo with calltrail's own receipt): refused when it is the public URL's origin, or a name of
 * this machine on the port calltrail listens on.
 */
const pointsAtItself = (url: URL, env: RelayEnvironment): boolean => {
  if (env.publicUrl !== undefined) {
    const own = new URL(env.publicUrl);
    if (own.hostname.toLowerCase() === url.hostname.toLowerCase() && defaultPort(own) === defaultPort(url)) {
      return true;
    }
  }
  return defaultPort(url) === env.listenPort && isLocalHost(url.hostname, env.listenHost);
};

const checkDestination = (variable: string, text: string, env: RelayEnvironment): URL => {
  const url = parseUrl(variable, text);
  if (pointsAtItself(url, env)) {
    throw new RelayConfigProblem(
      variable,
      `${url.origin} is calltrail itself (its listen address or public URL): the relay would loop`,
    );
  }
  return url;
};

/** Undefined without a relay URL: then nothing is relayed. Throws `RelayConfigProblem`. */
export const parseRelayConfig = (env: RelayEnvironment): RelayConfig | undefined => {
  if (env.url === undefined) {
    for (const [variable, value] of [
      ['CALLTRAIL_RELAY_OVERRIDES', env.overrides],
      ['CALLTRAIL_RELAY_FALLBACKS', env.fallbacks],
    ] as const) {
      if (value !== undefined) throw new RelayConfigProblem(variable, 'needs CALLTRAIL_RELAY_URL');
    }
    return undefined;
  }
  const url = checkDestination('CALLTRAIL_RELAY_URL', env.url, env);
  const overrides = new Map<string, URL>();
  if (env.overrides !== undefined) {
    const parsed = parseJson('CALLTRAIL_RELAY_OVERRIDES', env.overrides, RelayOverrides);
    for (const [number, destination] of Object.entries(parsed)) {
      overrides.set(number, checkDestination(`CALLTRAIL_RELAY_OVERRIDES (${number})`, destination, env));
    }
  }
  const fallbacks =
    env.fallbacks === undefined ? {} : parseJson('CALLTRAIL_RELAY_FALLBACKS', env.fallbacks, RelayFallbacks);
  if (env.archivedResponseBytes > env.maxResponseBytes) {
    throw new RelayConfigProblem(
      'CALLTRAIL_RELAY_ARCHIVED_RESPONSE_BYTES',
      `must not exceed CALLTRAIL_RELAY_MAX_RESPONSE_BYTES (${env.maxResponseBytes})`,
    );
  }
  for (const [variable, deadline] of [
    ['CALLTRAIL_RELAY_ASSISTANT_REQUEST_DEADLINE_MS', env.assistantRequestDeadlineMs],
    ['CALLTRAIL_RELAY_TOOL_CALLS_DEADLINE_MS', env.toolCallsDeadlineMs],
  ] as const) {
    if (env.archiveBudgetMs >= deadline) {
      throw new RelayConfigProblem(
        'CALLTRAIL_RELAY_ARCHIVE_BUDGET_MS',
        `must be below ${variable} (${deadline}), or nothing is left for the destination`,
      );
    }
  }
  return {
    url,
    overrides,
    deadlineMs: {
      'assistant-request': env.assistantRequestDeadlineMs,
      'tool-calls': env.toolCallsDeadlineMs,
    },
    archiveBudgetMs: env.archiveBudgetMs,
    maxResponseBytes: env.maxResponseBytes,
    archivedResponseBytes: env.archivedResponseBytes,
    fallbacks,
    recordBeforeAnswer: env.recordBeforeAnswer ?? false,
  };
};
