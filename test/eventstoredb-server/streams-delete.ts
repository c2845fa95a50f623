/**
 * `Streams.Delete` (soft delete: `$tb` = 2^63-1 in the stream's metadata) and `Streams.Tombstone`
 * (hard delete, permanent). Failures reach the client as trailers, as the real server sends them.
 */
import type { sendUnaryData, ServerUnaryCall } from '@grpc/grpc-js';
import streamsPb from '@eventstore/db-client/generated/streams_pb.js';
import sharedPb from '@eventstore/db-client/generated/shared_pb.js';
import { callerOf, type Caller } from './authorization.ts';
import { expectedVersion, type DeleteResult, type InMemoryEventStore } from './store.ts';
import { rpcExceptions, streamNameOf, uint64 } from './protocol.ts';

type DeleteReq = InstanceType<typeof streamsPb.DeleteReq>;
type DeleteResp = InstanceType<typeof streamsPb.DeleteResp>;
type TombstoneReq = InstanceType<typeof streamsPb.TombstoneReq>;
type TombstoneResp = InstanceType<typeof streamsPb.TombstoneResp>;
type DeleteOptions =
  InstanceType<typeof streamsPb.DeleteReq.Options> | InstanceType<typeof streamsPb.TombstoneReq.Options>;

const expectedOf = (options: DeleteOptions): bigint => {
  if (options.hasRevision()) return uint64(options.getRevision(), 'revision');
  if (options.hasNoStream()) return expectedVersion.noStream;
  if (options.hasStreamExists()) return expectedVersion.streamExists;
  if (options.hasAny()) return expectedVersion.any;
  throw rpcExceptions.unhandled();
};

const run = (
  store: InMemoryEventStore,
  options: DeleteOptions | undefined,
  hardDelete: boolean,
  caller: Caller,
) => {
  if (!options) throw rpcExceptions.unhandled();
  const streamName = streamNameOf(options.getStreamIdentifier());
  const expected = expectedOf(options);
  const result: DeleteResult = store.delete(streamName, expected, hardDelete, caller);
  switch (result.kind) {
    case 'success':
      return result.position;
    case 'wrong-expected-version':
      throw rpcExceptions.wrongExpectedVersion('Delete', streamName, expected, result.currentVersion);
    case 'stream-deleted':
      throw rpcExceptions.streamDeleted(streamName);
    case 'access-denied':
      throw rpcExceptions.accessDenied();
  }
};

const failWith = (callback: sendUnaryData<never>, error: unknown) =>
  callback(
    error instanceof Error && 'code' in error
      ? (error as Parameters<typeof callback>[0])
      : rpcExceptions.unhandled(),
  );

export const createDeleteHandler =
  (store: InMemoryEventStore) =>
  (call: ServerUnaryCall<DeleteReq, DeleteResp>, callback: sendUnaryData<DeleteResp>): void => {
    try {
      const position = run(store, call.request.getOptions(), false, callerOf(call));
      const response = new streamsPb.DeleteResp();
      if (position === undefined) response.setNoPosition(new sharedPb.Empty());
      else
        response.setPosition(
          new streamsPb.DeleteResp.Position()
            .setCommitPosition(position.toString())
            .setPreparePosition(position.toString()),
        );
      callback(null, response);
    } catch (error) {
      failWith(callback, error);
    }
  };

export const createTombstoneHandler =
  (store: InMemoryEventStore) =>
  (call: ServerUnaryCall<TombstoneReq, TombstoneResp>, callback: sendUnaryData<TombstoneResp>): void => {
    try {
      const position = run(store, call.request.getOptions(), true, callerOf(call));
      const response = new streamsPb.TombstoneResp();
      if (position === undefined) response.setNoPosition(new sharedPb.Empty());
      else
        response.setPosition(
          new streamsPb.TombstoneResp.Position()
            .setCommitPosition(position.toString())
            .setPreparePosition(position.toString()),
        );
      callback(null, response);
    } catch (error) {
      failWith(callback, error);
    }
  };
