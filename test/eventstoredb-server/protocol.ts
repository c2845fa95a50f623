/**
 * Wire conventions shared by the test server's services, as the real server applies them: UUIDs
 * (string or structured, as the request asks), stream identifiers as UTF-8 bytes, int64 fields as
 * decimal strings, `created` in .NET ticks, and the error channels (trailers, status codes, packed
 * `google.rpc.Status` details).
 */
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import sharedPb from '@eventstore/db-client/generated/shared_pb.js';
import statusPb from '@eventstore/db-client/generated/status_pb.js';
import anyPb from 'google-protobuf/google/protobuf/any_pb.js';
import emptyPb from 'google-protobuf/google/protobuf/empty_pb.js';

export { sharedPb };

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const hexUuidPattern = /^[0-9a-f]{32}$/;

export class BadRequestError extends Error {
  override readonly name = 'BadRequestError';
}

/** Parses a UUID the way .NET's `Guid.Parse` accepts the client's forms; throws on anything else. */
export const uuidFromDto = (uuid: InstanceType<typeof sharedPb.UUID> | undefined): string => {
  if (!uuid) throw new BadRequestError('Value cannot be null. (Parameter: id)');
  if (uuid.hasStructured()) {
    const structured = uuid.getStructured()!;
    const most = BigInt.asUintN(64, BigInt(structured.getMostSignificantBits()));
    const least = BigInt.asUintN(64, BigInt(structured.getLeastSignificantBits()));
    const hex = most.toString(16).padStart(16, '0') + least.toString(16).padStart(16, '0');
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }
  const text = uuid
    .getString()
    .trim()
    .toLowerCase()
    .replace(/^\{(.*)\}$/, '$1');
  if (uuidPattern.test(text)) return text;
  if (hexUuidPattern.test(text)) {
    return `${text.slice(0, 8)}-${text.slice(8, 12)}-${text.slice(12, 16)}-${text.slice(16, 20)}-${text.slice(20)}`;
  }
  throw new BadRequestError(`Unrecognized Guid format: '${uuid.getString()}'.`);
};

/** The id as the reader asked for it: `string`, or `structured` (two signed int64 halves). */
export const uuidToDto = (id: string, structured: boolean): InstanceType<typeof sharedPb.UUID> => {
  const dto = new sharedPb.UUID();
  if (!structured) return dto.setString(id);
  const hex = id.replace(/-/g, '');
  const part = (from: number) => BigInt.asIntN(64, BigInt(`0x${hex.slice(from, from + 16)}`)).toString();
  return dto.setStructured(
    new sharedPb.UUID.Structured().setMostSignificantBits(part(0)).setLeastSignificantBits(part(16)),
  );
};

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

export const streamNameOf = (
  identifier: InstanceType<typeof sharedPb.StreamIdentifier> | undefined,
): string => {
  if (!identifier) throw new BadRequestError('Required field StreamIdentifier not set.');
  const name = utf8Decoder.decode(identifier.getStreamName_asU8());
  if (name.length === 0) throw new BadRequestError('Stream name cannot be empty.');
  return name;
};

export const streamIdentifier = (streamName: string): InstanceType<typeof sharedPb.StreamIdentifier> =>
  new sharedPb.StreamIdentifier().setStreamName(Buffer.from(streamName, 'utf8'));

/** Decimal text of an unsigned 64-bit field; the generated code keeps int64 as strings. */
export const uint64 = (text: string, field: string): bigint => {
  if (!/^\d{1,20}$/.test(text)) throw new BadRequestError(`${field} is not an unsigned 64-bit integer.`);
  const value = BigInt(text);
  if (value >= 1n << 64n) throw new BadRequestError(`${field} is not an unsigned 64-bit integer.`);
  return value;
};

/** An error a handler returns or emits; grpc-js turns code, details and trailers into the status. */
export const rpcError = (
  code: status,
  details: string,
  trailers: Record<string, string> = {},
): ServiceError => {
  const metadata = new Metadata();
  for (const [key, value] of Object.entries(trailers)) metadata.set(key, value);
  return Object.assign(new Error(details), { code, details, metadata });
};

/** The server's `RpcExceptions`: what reaches the client as trailer metadata and a status code. */
export const rpcExceptions = {
  streamDeleted: (streamName: string) =>
    rpcError(status.FAILED_PRECONDITION, `Event stream '${streamName}' is deleted.`, {
      exception: 'stream-deleted',
      'stream-name': streamName,
    }),
  accessDenied: () => rpcError(status.PERMISSION_DENIED, 'Access Denied', { exception: 'access-denied' }),
  wrongExpectedVersion: (operation: string, streamName: string, expected: bigint, actual: bigint) =>
    rpcError(
      status.FAILED_PRECONDITION,
      `${operation} failed due to WrongExpectedVersion. Stream: ${streamName}, Expected version: ${expected}, Actual version: ${actual}`,
      {
        exception: 'wrong-expected-version',
        'stream-name': streamName,
        'expected-version': expected.toString(),
        'actual-version': actual.toString(),
      },
    ),
  maxAppendSizeExceeded: (maxAppendSize: number) =>
    rpcError(status.INVALID_ARGUMENT, `Maximum Append Size of ${maxAppendSize} Exceeded.`, {
      exception: 'maximum-append-size-exceeded',
      'maximum-append-size': String(maxAppendSize),
    }),
  requiredMetadataPropertyMissing: (property: string) =>
    rpcError(status.INVALID_ARGUMENT, `Required Metadata Property '${property}' is missing`, {
      exception: 'missing-required-metadata-property',
      'required-metadata-properties': 'type,content-type',
    }),
  /** What ASP.NET reports for an exception a handler did not map. */
  unhandled: () => rpcError(status.UNKNOWN, 'Exception was thrown by handler.'),
  timeout: (message: string) => rpcError(status.ABORTED, `Operation timed out: ${message}`),
  serverNotReady: () => rpcError(status.UNAVAILABLE, 'Server Is Not Ready'),
};

type Message = { serializeBinary(): Uint8Array };

const packed = (code: number, message: string, typeName: string, detail: Message) => {
  const details = new anyPb.Any();
  details.pack(detail.serializeBinary(), typeName);
  return new statusPb.Status().setCode(code).setMessage(message).setDetails(details);
};

/** The server's `google.rpc.Status` replies for BatchAppend, each with its packed detail. */
export const batchAppendErrors = {
  wrongExpectedVersion: (currentVersion: bigint, expected: bigint) => {
    const detail = new sharedPb.WrongExpectedVersion();
    if (currentVersion < 0n) detail.setCurrentNoStream(new emptyPb.Empty());
    else detail.setCurrentStreamRevision(currentVersion.toString());
    if (expected === -2n) detail.setExpectedAny(new emptyPb.Empty());
    else if (expected === -1n) detail.setExpectedNoStream(new emptyPb.Empty());
    else if (expected === -4n) detail.setExpectedStreamExists(new emptyPb.Empty());
    else detail.setExpectedStreamPosition(expected.toString());
    return packed(
      status.ALREADY_EXISTS,
      'WrongExpectedVersion',
      'event_store.client.WrongExpectedVersion',
      detail,
    );
  },
  streamDeleted: (streamName: string) =>
    packed(
      status.NOT_FOUND,
      'StreamDeleted',
      'event_store.client.StreamDeleted',
      new sharedPb.StreamDeleted().setStreamIdentifier(streamIdentifier(streamName)),
    ),
  accessDenied: () =>
    packed(
      status.PERMISSION_DENIED,
      'AccessDenied',
      'event_store.client.AccessDenied',
      new sharedPb.AccessDenied(),
    ),
  timeout: () =>
    packed(status.DEADLINE_EXCEEDED, 'Timeout', 'event_store.client.Timeout', new sharedPb.Timeout()),
  unknown: () => packed(status.UNKNOWN, 'Unknown', 'event_store.client.Unknown', new sharedPb.Unknown()),
  maximumAppendSizeExceeded: (maxAppendSize: number) =>
    packed(
      status.INVALID_ARGUMENT,
      'MaximumAppendSizeExceeded',
      'event_store.client.MaximumAppendSizeExceeded',
      new sharedPb.MaximumAppendSizeExceeded().setMaxappendsize(maxAppendSize),
    ),
  badRequest: (message: string) =>
    packed(
      status.INVALID_ARGUMENT,
      'BadRequest',
      'event_store.client.BadRequest',
      new sharedPb.BadRequest().setMessage(message),
    ),
};
