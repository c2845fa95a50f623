/**
 * The audit API: call history, archived events, quarantine, CSV export and replay.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { AppDependencies } from '../app.ts';

export const auditRoutes: FastifyPluginAsyncTypebox<AppDependencies> = async () => {};
