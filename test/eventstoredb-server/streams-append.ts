/**
 * `Streams.Append` (client-streaming: options, then one proposed message per event) and
 * `Streams.BatchAppend` (one long-lived bidi call; requests correlated by id, completed by
 * `is_final`, bounded by a deadline). Errors take the paths the real server uses: Append answers a
 * wrong expected version in its reply body and everything else in trailers; BatchAppend answers
 * every failure as a `google.rpc.Status` with a packed detail.
 */
import {
  status,
  type ServerDuplexStream,
  type ServerReadableStream,
  type sendUnaryData,
} from '@grpc/grpc-js';
import streamsPb from '@eventstore/db-client/generated/streams_pb.js';
import sharedPb from '@eventstore/db-client/generated/shared_pb.js';
import emptyPb from 'google-protobuf/google/protobuf/empty_pb.js';
import { callerOf } from './authorization.ts';
import {
  contentTypes,
  expectedVersion,
  sizeOnDisk,
  type InMemoryEventStore,
  type ProposedRecord,
  type WriteResult,
} from './store.ts';
import {
  BadRequestError,
  batchAppendErrors,
  rpcError,
  rpcExceptions,
  streamIdentifier,
  streamNameOf,
  uint64,
  uuidFromDto,
} from './protocol.ts';

type AppendReq = InstanceType<typeof streamsPb.AppendReq>;
type AppendResp = InstanceType<typeof streamsPb.AppendResp>;
type BatchAppendReq = InstanceType<typeof streamsPb.BatchAppendReq>;
type BatchAppendResp = InstanceType<typeof streamsPb.BatchAppendResp>;
type ProposedMessage =
  | InstanceType<typeof streamsPb.AppendReq.ProposedMessage>
  | InstanceType<typeof streamsPb.BatchAppendReq.ProposedMessage>;

const { AppendResp: AppendRespMessage, BatchAppendResp: BatchAppendRespMessage } = streamsPb;

export interface AppendDependencies {
  readonly store: InMemoryEventStore;
  /** The server's own bound on a write (`--write-timeout-ms`, 2 s by default). */
  readonly writeTimeoutMs: number;
  /** Fault injection: how long a write takes; past `writeTimeoutMs` it times out unwritten. */
  readonly writeDelayMs: () => number;
  /** How many delayed writes are still waiting out their delay; the server counts them here. */
  readonly delayedWrites: { inFlight: number };
}

class MissingMetadataError extends Error {
  constructor(readonly property: string) {
    super(`Required Metadata Property '${property}' is missing`);
  }
}

/** A proposed message as the server reads it: `type` and `content-type` are required. */
const toRecord = (message: ProposedMessage): ProposedRecord => {
  const metadata = message.getMetadataMap();
  const eventType = metadata.get('type');
  if (eventType === undefined) throw new MissingMetadataError('type');
  const contentType = metadata.get('content-type');
  if (contentType === undefined) throw new MissingMetadataError('content-type');
  return {
    eventId: uuidFromDto(message.getId()),
    eventType,
    isJson: contentType === contentTypes.json,
    data: message.getData_asU8(),
    metadata: message.getCustomMetadata_asU8(),
  };
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs a write after the injected delay; undefined when the delay outlasts the time allowed. */
const delayedWrite = async (
  dependencies: AppendDependencies,
  allowedMs: number,
  write: () => WriteResult,
): Promise<WriteResult | undefined> => {
  const delay = dependencies.writeDelayMs();
  if (delay <= 0) return write();
  dependencies.delayedWrites.inFlight += 1;
  try {
    if (delay > allowedMs) {
      await sleep(allowedMs);
      return undefined;
    }
    await sleep(delay);
    return write();
  } finally {
    dependencies.delayedWrites.inFlight -= 1;
  }
};

const appendSuccess = (result: Extract<WriteResult, { kind: 'success' }>) => {
  const success = new AppendRespMessage.Success();
  if (result.currentRevision < 0n) success.setNoStream(new sharedPb.Empty());
  else success.setCurrentRevision(result.currentRevision.toString());
  if (result.position === undefined) success.setNoPosition(new sharedPb.Empty());
  else
    success.setPosition(
      new AppendRespMessage.Position()
        .setCommitPosition(result.position.toString())
        .setPreparePosition(result.position.toString()),
    );
  return new AppendRespMessage().setSuccess(success);
};

const appendWrongExpectedVersion = (expected: bigint, currentVersion: bigint): AppendResp => {
  const wrong = new AppendRespMessage.WrongExpectedVersion();
  const safe = (value: bigint) => (value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : undefined);
  if (expected === expectedVersion.any)
    wrong.setExpectedAny(new sharedPb.Empty()).setAny2060(new sharedPb.Empty());
  else if (expected === expectedVersion.streamExists)
    wrong.setExpectedStreamExists(new sharedPb.Empty()).setStreamExists2060(new sharedPb.Empty());
  else if (expected === expectedVersion.noStream) wrong.setExpectedNoStream(new sharedPb.Empty());
  else {
    wrong.setExpectedRevision(expected.toString());
    // The 20.6.0 fields are plain numbers in this generated code; only exact values are sent.
    const legacy = safe(expected);
    if (legacy !== undefined) wrong.setExpectedRevision2060(legacy);
  }
  if (currentVersion < 0n)
    wrong.setCurrentNoStream(new sharedPb.Empty()).setNoStream2060(new sharedPb.Empty());
  else {
    wrong.setCurrentRevision(currentVersion.toString());
    const legacy = safe(currentVersion);
    if (legacy !== undefined) wrong.setCurrentRevision2060(legacy);
  }
  return new AppendRespMessage().setWrongExpectedVersion(wrong);
};

export const createAppendHandler = (dependencies: AppendDependencies) => {
  const { store } = dependencies;
  return (call: ServerReadableStream<AppendReq, AppendResp>, callback: sendUnaryData<AppendResp>): void => {
    const run = async (): Promise<AppendResp> => {
      const iterator = call[Symbol.asyncIterator]() as AsyncIterator<AppendReq>;
      const first = await iterator.next();
      if (first.done || !first.value.hasOptions()) throw rpcExceptions.unhandled();
      const options = first.value.getOptions()!;
      const streamName = streamNameOf(options.getStreamIdentifier());
      const expected = options.hasRevision()
        ? uint64(options.getRevision(), 'revision')
        : options.hasAny()
          ? expectedVersion.any
          : options.hasStreamExists()
            ? expectedVersion.streamExists
            : options.hasNoStream()
              ? expectedVersion.noStream
              : undefined;
      if (expected === undefined) throw rpcError(status.INVALID_ARGUMENT, 'Expected revision is required.');
      if (!store.allowed(streamName, 'write', callerOf(call))) throw rpcExceptions.accessDenied();
      const records: ProposedRecord[] = [];
      let size = 0;
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
        if (!next.value.hasProposedMessage()) throw rpcExceptions.unhandled();
        const record = toRecord(next.value.getProposedMessage()!);
        size += sizeOnDisk(record);
        if (size > store.maxAppendSize) throw rpcExceptions.maxAppendSizeExceeded(store.maxAppendSize);
        records.push(record);
      }
      const result = await delayedWrite(dependencies, dependencies.writeTimeoutMs, () =>
        store.append(streamName, expected, records, callerOf(call)),
      );
      if (!result) throw rpcExceptions.timeout('CommitTimeout');
      switch (result.kind) {
        case 'success':
          return appendSuccess(result);
        case 'wrong-expected-version':
          return appendWrongExpectedVersion(expected, result.currentVersion);
        case 'stream-deleted':
          throw rpcExceptions.streamDeleted(streamName);
        case 'access-denied':
          throw rpcExceptions.accessDenied();
      }
    };
    run().then(
      (response) => callback(null, response),
      (error: unknown) => {
        if (error instanceof MissingMetadataError) {
          callback(rpcExceptions.requiredMetadataPropertyMissing(error.property));
        } else if (error instanceof BadRequestError) {
          callback(rpcExceptions.unhandled());
        } else if (error instanceof Error && 'code' in error) {
          callback(error as Parameters<typeof callback>[0]);
        } else {
          callback(rpcExceptions.unhandled());
        }
      },
    );
  };
};

interface PendingBatch {
  readonly correlationId: InstanceType<typeof sharedPb.UUID>;
  readonly streamName: string;
  readonly expected: bigint;
  readonly records: ProposedRecord[];
  readonly timeoutMs: number;
  size: number;
  timer: NodeJS.Timeout;
}

export const createBatchAppendHandler = (dependencies: AppendDependencies) => {
  const { store } = dependencies;
  return (call: ServerDuplexStream<BatchAppendReq, BatchAppendResp>): void => {
    const pending = new Map<string, PendingBatch>();
    let inFlight = 0;
    let inputEnded = false;
    const reply = (response: BatchAppendResp) => {
      if (!call.cancelled && !call.writableEnded) call.write(response);
    };
    const failure = (
      correlationId: InstanceType<typeof sharedPb.UUID> | undefined,
      streamName: string | undefined,
      error: ReturnType<typeof batchAppendErrors.unknown>,
    ) => {
      const response = new BatchAppendRespMessage().setError(error);
      if (correlationId) response.setCorrelationId(correlationId);
      if (streamName !== undefined) response.setStreamIdentifier(streamIdentifier(streamName));
      reply(response);
    };
    const finishIfDone = () => {
      if (inputEnded && inFlight === 0 && !call.cancelled && !call.writableEnded) call.end();
    };

    const complete = async (batch: PendingBatch) => {
      inFlight += 1;
      try {
        const result = await delayedWrite(dependencies, batch.timeoutMs, () =>
          store.append(batch.streamName, batch.expected, batch.records, callerOf(call)),
        );
        if (!result) return failure(batch.correlationId, batch.streamName, batchAppendErrors.timeout());
        switch (result.kind) {
          case 'success': {
            const success = new BatchAppendRespMessage.Success();
            if (result.currentRevision < 0n) success.setNoStream(new emptyPb.Empty());
            else success.setCurrentRevision(result.currentRevision.toString());
            if (result.position === undefined) success.setNoPosition(new emptyPb.Empty());
            else
              success.setPosition(
                new sharedPb.AllStreamPosition()
                  .setCommitPosition(result.position.toString())
                  .setPreparePosition(result.position.toString()),
              );
            return reply(
              new BatchAppendRespMessage()
                .setCorrelationId(batch.correlationId)
                .setStreamIdentifier(streamIdentifier(batch.streamName))
                .setSuccess(success),
            );
          }
          case 'wrong-expected-version':
            return failure(
              batch.correlationId,
              batch.streamName,
              batchAppendErrors.wrongExpectedVersion(result.currentVersion, batch.expected),
            );
          case 'stream-deleted':
            return failure(
              batch.correlationId,
              batch.streamName,
              batchAppendErrors.streamDeleted(batch.streamName),
            );
          case 'access-denied':
            return failure(batch.correlationId, batch.streamName, batchAppendErrors.accessDenied());
        }
      } finally {
        inFlight -= 1;
        finishIfDone();
      }
    };

    const receive = (request: BatchAppendReq) => {
      const correlationId = request.getCorrelationId();
      let streamName: string | undefined;
      try {
        const key = uuidFromDto(correlationId);
        const options = request.getOptions();
        if (options) {
          streamName = streamNameOf(options.getStreamIdentifier());
          if (!store.allowed(streamName, 'write', callerOf(call))) {
            return failure(correlationId, streamName, batchAppendErrors.accessDenied());
          }
          const deadline = options.getDeadline();
          const requestedMs = deadline ? deadline.toDate().getTime() - Date.now() : Number.POSITIVE_INFINITY;
          const timeoutMs = Math.min(requestedMs, dependencies.writeTimeoutMs);
          if (timeoutMs <= 0) return failure(correlationId, streamName, batchAppendErrors.timeout());
          const expected = options.hasStreamPosition()
            ? uint64(options.getStreamPosition(), 'stream_position')
            : options.hasAny()
              ? expectedVersion.any
              : options.hasStreamExists()
                ? expectedVersion.streamExists
                : options.hasNoStream()
                  ? expectedVersion.noStream
                  : undefined;
          if (expected === undefined) throw new BadRequestError('Expected stream position is required.');
          if (!pending.has(key)) {
            const name = streamName;
            const batch: PendingBatch = {
              correlationId: correlationId!,
              streamName: name,
              expected,
              records: [],
              timeoutMs,
              size: 0,
              // The deadline covers the request until its final part arrives, as on the server.
              timer: setTimeout(() => {
                if (pending.delete(key)) failure(correlationId, name, batchAppendErrors.timeout());
              }, timeoutMs),
            };
            pending.set(key, batch);
          }
        }
        const batch = pending.get(key);
        if (!batch) return;
        streamName = batch.streamName;
        for (const message of request.getProposedMessagesList()) {
          const record = toRecord(message);
          batch.size += sizeOnDisk(record);
          batch.records.push(record);
        }
        if (batch.size > store.maxAppendSize) {
          pending.delete(key);
          clearTimeout(batch.timer);
          failure(
            correlationId,
            batch.streamName,
            batchAppendErrors.maximumAppendSizeExceeded(store.maxAppendSize),
          );
        }
        if (!request.getIsFinal()) return;
        if (!pending.delete(key)) return;
        clearTimeout(batch.timer);
        complete(batch).catch(() =>
          failure(batch.correlationId, batch.streamName, batchAppendErrors.unknown()),
        );
      } catch (error) {
        const message =
          error instanceof MissingMetadataError
            ? `The given key '${error.property}' was not present in the dictionary.`
            : error instanceof Error
              ? error.message
              : String(error);
        failure(correlationId, streamName, batchAppendErrors.badRequest(message));
      }
    };

    call.on('data', receive);
    call.on('end', () => {
      inputEnded = true;
      finishIfDone();
    });
    call.on('cancelled', () => {
      for (const batch of pending.values()) clearTimeout(batch.timer);
      pending.clear();
    });
    call.on('error', () => {
      for (const batch of pending.values()) clearTimeout(batch.timer);
      pending.clear();
    });
  };
};
