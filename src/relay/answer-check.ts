/**
 * What the customer's handler must answer, per relayed event type (Flireo's rules), and what
 * calltrail answers instead when a fallback is configured. Pure functions over the parsed bodies.
 *
 * - `tool-calls`: `{results: [{toolCallId, result}]}`, naming every tool call of the request and no
 *   other. The request's tool calls are generation 1's `tasksInitiated[].taskId` (tool name
 *   `taskName`), or generation 2's `message.toolCallList[]` / `message.toolCalls[]` (`id`, name
 *   `function.name` or `name`).
 * - `assistant-request`: an object with an `assistant` object, or an `error`.
 */
import { checkJsonMediaType, parseJsonBody } from '../webhook/request-body.ts';
import type { RelayFallbacks, RelayedEventType } from './relay-config.ts';

export interface RequestedToolCall {
  readonly id: string;
  readonly name: string | null;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const text = (value: unknown): string | null => (typeof value === 'string' && value !== '' ? value : null);

/** The tool calls a `tool-calls` request asks for; empty when its shape names none. */
export const requestedToolCalls = (body: unknown): RequestedToolCall[] => {
  if (!isObject(body)) return [];
  const calls: RequestedToolCall[] = [];
  if (Array.isArray(body['tasksInitiated'])) {
    for (const task of body['tasksInitiated']) {
      if (isObject(task) && text(task['taskId']) !== null) {
        calls.push({ id: text(task['taskId'])!, name: text(task['taskName']) });
      }
    }
  }
  const message = body['message'];
  if (isObject(message)) {
    const list = Array.isArray(message['toolCallList'])
      ? message['toolCallList']
      : Array.isArray(message['toolCalls'])
        ? message['toolCalls']
        : [];
    for (const call of list) {
      if (!isObject(call) || text(call['id']) === null) continue;
      const fn = call['function'];
      calls.push({
        id: text(call['id'])!,
        name: (isObject(fn) ? text(fn['name']) : null) ?? text(call['name']),
      });
    }
  }
  return calls;
};

export type AnswerCheck = { readonly ok: true } | { readonly ok: false; readonly detail: string };

const invalid = (detail: string): AnswerCheck => ({ ok: false, detail });

/** Whether a 2xx answer is one Flireo can use for this event type. */
export const checkAnswer = (
  eventType: RelayedEventType,
  answer: { readonly contentType: string | null; readonly body: Buffer },
  toolCalls: readonly RequestedToolCall[],
): AnswerCheck => {
  const mediaType = checkJsonMediaType(answer.contentType ?? undefined);
  if (!mediaType.ok) return invalid(`content-type ${mediaType.message}`);
  const json = parseJsonBody(answer.body);
  if (!json.ok) return invalid(`${json.problem.field} ${json.problem.message}`);
  const body = json.value;
  if (!isObject(body)) return invalid('body must be a JSON object');
  switch (eventType) {
    case 'assistant-request': {
      if (isObject(body['assistant'])) return { ok: true };
      if (body['error'] !== undefined && body['error'] !== null) return { ok: true };
      return invalid('/assistant must be an object (or /error set): no assistant returned');
    }
    case 'tool-calls': {
      const results = body['results'];
      if (!Array.isArray(results)) return invalid('/results must be an array');
      const named = new Set<string>();
      for (const [index, result] of results.entries()) {
        if (!isObject(result) || text(result['toolCallId']) === null) {
          return invalid(`/results/${index}/toolCallId must be a non-empty string`);
        }
        named.add(text(result['toolCallId'])!);
      }
      const requested = new Set(toolCalls.map((call) => call.id));
      const missing = [...requested].filter((id) => !named.has(id));
      if (missing.length > 0)
        return invalid(`/results does not name toolCallId ${missing.slice(0, 5).join(', ')}`);
      if (requested.size > 0) {
        const unknown = [...named].filter((id) => !requested.has(id));
        if (unknown.length > 0) {
          return invalid(`/results names toolCallId ${unknown.slice(0, 5).join(', ')}, not in the request`);
        }
      }
      return { ok: true };
    }
    default: {
      const never: never = eventType;
      return never;
    }
  }
};

/** The configured fallback answer's JSON body, or undefined when there is none for this request. */
export const fallbackAnswer = (
  eventType: RelayedEventType,
  fallbacks: RelayFallbacks,
  toolCalls: readonly RequestedToolCall[],
): unknown => {
  switch (eventType) {
    case 'assistant-request':
      return fallbacks.assistantRequest;
    case 'tool-calls': {
      const perTool = fallbacks.toolCalls;
      if (perTool === undefined || toolCalls.length === 0) return undefined;
      // Only when every tool asked for has one: a partial answer would fail the call anyway.
      if (!toolCalls.every((call) => call.name !== null && Object.hasOwn(perTool, call.name)))
        return undefined;
      return { results: toolCalls.map((call) => ({ toolCallId: call.id, result: perTool[call.name!] })) };
    }
    default: {
      const never: never = eventType;
      return never;
    }
  }
};
