/**
 * The customer's own Flireo handler, as the relay benchmark stands it in: a bare `node:http` server
 * that answers every `tool-calls` request at once with results naming exactly the request's tool
 * call ids. The answer is a pure function of the request body, so the benchmark knows which bytes
 * every answer must carry, whether it came straight from here or through calltrail.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** The tool call ids of a `tool-calls` body: generation 1's `tasksInitiated[].taskId`, generation 2's `message.toolCallList[].id`. */
const toolCallIdsOf = (body: unknown): string[] => {
  if (!isObject(body)) return [];
  const tasks = Array.isArray(body['tasksInitiated']) ? body['tasksInitiated'] : [];
  const message = body['message'];
  const list = isObject(message) && Array.isArray(message['toolCallList']) ? message['toolCallList'] : [];
  return [
    ...tasks.map((task) => (isObject(task) ? task['taskId'] : undefined)),
    ...list.map((call) => (isObject(call) ? call['id'] : undefined)),
  ].filter((id): id is string => typeof id === 'string');
};

/** The handler's answer to a `tool-calls` request body. */
export const toolCallAnswer = (requestBody: Buffer | string): string => {
  let parsed: unknown;
  try {
    parsed = JSON.parse(requestBody.toString());
  } catch {
    parsed = undefined;
  }
  return JSON.stringify({
    results: toolCallIdsOf(parsed).map((toolCallId) => ({ toolCallId, result: `done: ${toolCallId}` })),
  });
};

export interface ToolHandler {
  readonly port: number;
  readonly requests: () => number;
  close(): Promise<void>;
}

export const startToolHandler = async (): Promise<ToolHandler> => {
  let requests = 0;
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      requests += 1;
      const answer = toolCallAnswer(Buffer.concat(chunks));
      response.writeHead(200, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(answer),
      });
      response.end(answer);
    });
  });
  // Callers keep their connections (calltrail's relay pool, the benchmark's own) for the whole run.
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    requests: () => requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
};
