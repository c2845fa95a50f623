/**
 * `POST /webhooks/flireo`: where a Flireo server event enters calltrail.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { AppDependencies } from '../app.ts';

export const webhookRoutes: FastifyPluginAsyncTypebox<AppDependencies> = async () => {};
