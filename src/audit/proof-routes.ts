/**
 * `GET /calls/:callId/proof`: for each of a call's archived events, its event hash (the Merkle leaf),
 * its RFC 6962 inclusion proof in the digest that covers it, and that digest as signed, so a third
 * party with the sealing public key can check one call without the whole archive. Events after the
 * last digest are listed as `unsealed`.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import type { AppDependencies } from '../app.ts';
import { callStreamName } from '../archive/streams.ts';
import { NotFoundError } from '../errors.ts';
import { proveStream, StreamProof } from '../sealing/proof.ts';
import { auditSecurity, notFoundResponse, problemResponses } from './api-docs.ts';
import { readCall } from './archive-reader.ts';
import { CallId } from './parameters.ts';

const CallProof = Type.Object({ callId: Type.String(), ...StreamProof.properties });

export const proofRoutes: FastifyPluginAsyncTypebox<AppDependencies> = async (app, dependencies) => {
  app.get(
    '/calls/:callId/proof',
    {
      schema: {
        summary: "Inclusion proofs of a call's archived events in the signed digests",
        description:
          'For each event of the call stream: the stored data and metadata, the event hash computed ' +
          'over stream, revision, id, type, data and metadata (the Merkle leaf), and, once sealed, ' +
          'its RFC 6962 audit path to the Merkle root of the digest covering it. Each digest named ' +
          'is included with its Ed25519 signature and key id; check it with the sealing public key.',
        tags: ['archive'],
        security: auditSecurity,
        params: Type.Object({ callId: CallId }),
        querystring: Type.Object({}, { additionalProperties: false }),
        response: { 200: CallProof, ...notFoundResponse, ...problemResponses },
      },
    },
    async (request) => {
      const { callId } = request.params;
      const streamName = callStreamName(callId);
      const proof = await proveStream(
        dependencies.eventStore,
        streamName,
        readCall(dependencies.eventStore, callId),
      );
      if (proof.events.length === 0) {
        throw new NotFoundError(`no archived events for call ${JSON.stringify(callId)}`);
      }
      return { callId, ...proof };
    },
  );
};
