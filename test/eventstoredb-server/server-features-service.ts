/**
 * `ServerFeatures.GetSupportedMethods`: what the client asks first. Advertising `BatchAppend` is what
 * makes the client append through it; names are lower-cased, as the real server reports them.
 */
import type { sendUnaryData, ServerUnaryCall } from '@grpc/grpc-js';
import serverFeaturesPb from '@eventstore/db-client/generated/serverfeatures_pb.js';
import type sharedPb from '@eventstore/db-client/generated/shared_pb.js';

const streamsService = 'event_store.client.streams.streams';

/** Only what this server implements; `Read` carries the features the real server lists for it. */
const supportedMethods: readonly { service: string; method: string; features: readonly string[] }[] = [
  { service: streamsService, method: 'read', features: ['position', 'events'] },
  { service: streamsService, method: 'append', features: [] },
  { service: streamsService, method: 'batchappend', features: [] },
  { service: streamsService, method: 'delete', features: [] },
  { service: streamsService, method: 'tombstone', features: [] },
  {
    service: 'event_store.client.server_features.serverfeatures',
    method: 'getsupportedmethods',
    features: [],
  },
];

export const createServerFeaturesService = (serverVersion: string) => ({
  getSupportedMethods: (
    _call: ServerUnaryCall<
      InstanceType<typeof sharedPb.Empty>,
      InstanceType<typeof serverFeaturesPb.SupportedMethods>
    >,
    callback: sendUnaryData<InstanceType<typeof serverFeaturesPb.SupportedMethods>>,
  ): void => {
    const response = new serverFeaturesPb.SupportedMethods().setEventStoreServerVersion(serverVersion);
    for (const { service, method, features } of supportedMethods) {
      response.addMethods(
        new serverFeaturesPb.SupportedMethod()
          .setServiceName(service)
          .setMethodName(method)
          .setFeaturesList([...features]),
      );
    }
    callback(null, response);
  },
});
