/**
 * The HTTP client that carries a relayed request to the customer's handler: one keep-alive undici
 * Agent for every destination (a live call cannot afford a TCP and TLS handshake per request), no
 * redirect ever followed, every request aborted at its deadline, and the answer read with a byte
 * bound (a larger one is cut off, never buffered). Failures come back as a kind, not an exception.
 */
import { createHash } from 'node:crypto';
import { Agent, request } from 'undici';
import type { RelayFailureKind } from './exchange.ts';

export interface DestinationAnswer {
  readonly status: number;
  readonly contentType: string | null;
  /** The body as far as it was read (everything, unless `truncated`). */
  readonly body: Buffer;
  readonly bytes: number;
  readonly sha256: string;
  readonly truncated: boolean;
}

export type ForwardResult =
  | { readonly ok: true; readonly answer: DestinationAnswer }
  | {
      readonly ok: false;
      readonly failure: RelayFailureKind;
      readonly detail: string;
      /** What was read of the answer before it failed, when anything was. */
      readonly answer?: DestinationAnswer;
    };

export interface ForwardRequest {
  readonly url: URL;
  readonly body: Buffer;
  readonly headers: Readonly<Record<string, string>>;
  readonly deadlineMs: number;
  readonly maxResponseBytes: number;
  /** Abandons the request (as a timeout) before its deadline. */
  readonly signal?: AbortSignal;
}

export interface DestinationClient {
  forward(forwardRequest: ForwardRequest): Promise<ForwardResult>;
  close(): Promise<void>;
}

const codeOf = (error: unknown, depth = 0): string | undefined => {
  if (!(error instanceof Error) || depth > 4) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : codeOf(error.cause, depth + 1);
};

const tlsCode = /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|ERR_OSSL_)/;

/** What kind of failure an error from undici (or the deadline) is. */
export const failureKindOf = (error: unknown, deadline: AbortSignal): RelayFailureKind => {
  if (deadline.aborted) return 'timeout';
  const code = codeOf(error) ?? '';
  if (
    code === 'UND_ERR_HEADERS_TIMEOUT' ||
    code === 'UND_ERR_BODY_TIMEOUT' ||
    code === 'UND_ERR_CONNECT_TIMEOUT'
  )
    return 'timeout';
  if (code === 'ECONNREFUSED') return 'refused';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'dns';
  if (tlsCode.test(code)) return 'tls';
  if (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' || code === 'EPIPE') return 'connection-closed';
  return 'error';
};

/** A failure's words for the record: the error's code and message, never a body. */
const describe = (error: unknown, deadline: AbortSignal, deadlineMs: number): string => {
  if (deadline.aborted) return `no complete answer within ${deadlineMs} ms`;
  const code = codeOf(error);
  const message = error instanceof Error ? error.message : String(error);
  return (code === undefined ? message : `${code}: ${message}`).slice(0, 500);
};

export const createDestinationClient = (options: {
  /** The longest deadline any request may have: bounds the agent's own timeouts too. */
  readonly maxDeadlineMs: number;
  readonly connections?: number;
}): DestinationClient => {
  const agent = new Agent({
    keepAliveTimeout: 30_000,
    keepAliveMaxTimeout: 60_000,
    headersTimeout: options.maxDeadlineMs,
    bodyTimeout: options.maxDeadlineMs,
    connect: { timeout: options.maxDeadlineMs },
    connections: options.connections ?? 256,
    // No redirect interceptor: a redirect is never followed; it is the destination's answer (non-2xx).
  });

  const forward = async (forwardRequest: ForwardRequest): Promise<ForwardResult> => {
    const { deadlineMs, maxResponseBytes } = forwardRequest;
    // A timer cleared with the answer, not `AbortSignal.timeout`: that one cannot be cancelled, so
    // every request would leave a timer behind to fire (and build an exception) at its deadline.
    const abort = new AbortController();
    const deadline = abort.signal;
    const timer = setTimeout(() => abort.abort(), Math.max(1, deadlineMs));
    const abandon = () => abort.abort();
    forwardRequest.signal?.addEventListener('abort', abandon, { once: true });
    if (forwardRequest.signal?.aborted === true) abort.abort();
    const hash = createHash('sha256');
    const chunks: Buffer[] = [];
    let bytes = 0;
    let status = 0;
    let contentType: string | null = null;
    const answerSoFar = (truncated: boolean): DestinationAnswer => ({
      status,
      contentType,
      body: Buffer.concat(chunks),
      bytes,
      sha256: hash.copy().digest('hex'),
      truncated,
    });
    try {
      const response = await request(forwardRequest.url, {
        dispatcher: agent,
        method: 'POST',
        headers: forwardRequest.headers,
        body: forwardRequest.body,
        signal: deadline,
        headersTimeout: deadlineMs,
        bodyTimeout: deadlineMs,
      });
      status = response.statusCode;
      const type = response.headers['content-type'];
      contentType = typeof type === 'string' ? type : (type?.[0] ?? null);
      const declared = Number(response.headers['content-length']);
      if (Number.isFinite(declared) && declared > maxResponseBytes) {
        response.body.destroy();
        return {
          ok: false,
          failure: 'too-large',
          detail: `the answer declares ${declared} bytes, over the limit of ${maxResponseBytes}`,
          answer: answerSoFar(true),
        };
      }
      for await (const chunk of response.body as AsyncIterable<Buffer>) {
        if (bytes + chunk.length > maxResponseBytes) {
          response.body.destroy();
          const room = maxResponseBytes - bytes;
          hash.update(chunk.subarray(0, room));
          chunks.push(chunk.subarray(0, room));
          bytes = maxResponseBytes;
          return {
            ok: false,
            failure: 'too-large',
            detail: `the answer is over the limit of ${maxResponseBytes} bytes`,
            answer: answerSoFar(true),
          };
        }
        hash.update(chunk);
        chunks.push(chunk);
        bytes += chunk.length;
      }
      return { ok: true, answer: answerSoFar(false) };
    } catch (error) {
      return {
        ok: false,
        failure: failureKindOf(error, deadline),
        detail: describe(error, deadline, deadlineMs),
        ...(status === 0 ? {} : { answer: answerSoFar(true) }),
      };
    } finally {
      clearTimeout(timer);
      forwardRequest.signal?.removeEventListener('abort', abandon);
    }
  };

  return { forward, close: () => agent.close() };
};
