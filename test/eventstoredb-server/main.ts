/**
 * Runs the EventStoreDB test server on its own, for trying calltrail by hand without a real
 * EventStoreDB: `npm run eventstoredb:test-server -- [port]` (or `PORT=...`). Prints the connection
 * string to use as `CALLTRAIL_EVENTSTORE_URL`; the data lives in memory until the process stops.
 */
import { startEventStoreDbTestServer } from './server.ts';

const parsePort = (text: string | undefined): number | undefined => {
  if (text === undefined || text === '') return undefined;
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new Error(`port must be an integer from 0 to 65535, got ${JSON.stringify(text)}`);
  }
  return port;
};

try {
  const port = parsePort(process.argv[2]) ?? parsePort(process.env['PORT']) ?? 2113;
  const server = await startEventStoreDbTestServer({ port });
  process.stdout.write(`${server.url}\n`);
  const stop = () => {
    void server.stop().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
} catch (error) {
  process.stderr.write(
    `eventstoredb test server: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
}
