/**
 * A minimal Server-Sent Events client over Node's http, for tests: it parses messages as they
 * arrive, lets a test wait for a condition on them (bounded), and can stop reading to play a slow
 * client.
 */
import http from 'node:http';

export interface SseMessage {
  readonly id: string | undefined;
  readonly event: string;
  readonly data: string;
}

export interface SseConnection {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly messages: SseMessage[];
  readonly ended: boolean;
  /** Stops reading: the server's writes back up. */
  pause(): void;
  resume(): void;
  /** Resolves once `condition` holds over the messages; rejects after `timeoutMs`. */
  until(condition: (messages: readonly SseMessage[]) => boolean, timeoutMs?: number): Promise<void>;
  /** The body so far, for a non-SSE answer. */
  body(): string;
  close(): void;
}

export const connectSse = (url: string, headers: Record<string, string> = {}): Promise<SseConnection> =>
  new Promise((resolve, reject) => {
    const request = http.get(url, { headers: { accept: 'text/event-stream', ...headers } }, (response) => {
      const messages: SseMessage[] = [];
      let text = '';
      let buffer = '';
      let ended = false;
      const waiters = new Set<() => void>();
      const notify = () => {
        for (const waiter of [...waiters]) waiter();
      };
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        text += chunk;
        buffer += chunk;
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let id: string | undefined;
          let event = 'message';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) continue;
            const colon = line.indexOf(':');
            const name = colon < 0 ? line : line.slice(0, colon);
            const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
            if (name === 'id') id = value;
            else if (name === 'event') event = value;
            else if (name === 'data') data.push(value);
          }
          if (data.length > 0) messages.push({ id, event, data: data.join('\n') });
        }
        notify();
      });
      response.on('end', () => {
        ended = true;
        notify();
      });
      response.on('error', () => {
        ended = true;
        notify();
      });
      resolve({
        status: response.statusCode ?? 0,
        headers: response.headers,
        messages,
        get ended() {
          return ended;
        },
        pause: () => response.pause(),
        resume: () => response.resume(),
        until: (condition, timeoutMs = 15_000) =>
          new Promise<void>((done, fail) => {
            const check = () => {
              if (condition(messages)) {
                waiters.delete(check);
                clearTimeout(timer);
                done();
              } else if (ended) {
                waiters.delete(check);
                clearTimeout(timer);
                fail(new Error(`stream ended first; ${messages.length} messages`));
              }
            };
            const timer = setTimeout(() => {
              waiters.delete(check);
              fail(new Error(`condition not met within ${timeoutMs} ms; ${messages.length} messages`));
            }, timeoutMs);
            waiters.add(check);
            check();
          }),
        body: () => text,
        close: () => request.destroy(),
      });
    });
    request.on('error', reject);
  });
