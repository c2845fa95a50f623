/**
 * What to give Flireo and API clients, and `calltrail credentials`, which shows it on demand.
 *
 * Credentials the embedded default generated are printed once, on the start that generated them;
 * later starts print the URLs only (logs and terminal scrollback should not collect secrets), and
 * `calltrail credentials` prints them again from the data directory when someone needs them.
 */
import type { Command } from 'commander';
import pino from 'pino';
import type { Config } from '../config.ts';
import { createLogger } from '../logger.ts';
import { applyGeneratedSecrets, type GeneratedSecrets } from '../stores/credentials.ts';
import { planStores } from '../stores/plan.ts';
import { loadConfigOrReport, oneLine } from './command-setup.ts';

export const hasWebhookAuthentication = (config: Config): boolean =>
  config.webhook.secret !== undefined || config.webhook.token !== undefined;

const showCommand = 'calltrail credentials';

/**
 * The instructions block. Generated credentials appear in full only when `reveal` is set; credentials
 * from the environment never do (whoever set them has them).
 */
export const connectionInstructions = (
  config: Config,
  generated: GeneratedSecrets | undefined,
  publicUrl: string,
  reveal: boolean,
): string => {
  const webhookUrl = `${publicUrl}/webhooks/flireo`;
  const hidden = `<shown by \`${showCommand}\`>`;
  const lines: string[] = [];
  if (!hasWebhookAuthentication(config)) {
    lines.push(`WARNING: webhooks are accepted WITHOUT authentication at ${webhookUrl}`);
  } else {
    lines.push('Server URL to give Flireo, either:');
    if (config.webhook.secret !== undefined) {
      const secret = !generated?.webhookSecret
        ? '<CALLTRAIL_WEBHOOK_SECRET>'
        : reveal
          ? config.webhook.secret
          : hidden;
      lines.push(`  signed requests:  ${webhookUrl}  with webhook secret ${secret}`);
    }
    if (config.webhook.token !== undefined) {
      const token = !generated?.webhookToken
        ? '<CALLTRAIL_WEBHOOK_TOKEN>'
        : reveal
          ? config.webhook.token
          : '<token>';
      lines.push(`  token in the URL: ${webhookUrl}/${token}`);
    }
  }
  if (generated?.apiToken) {
    lines.push(
      `API token (Authorization: Bearer <token>): ${reveal ? (config.apiTokens[0]?.token ?? '') : hidden}`,
    );
  }
  if (generated) {
    lines.push(
      reveal
        ? `Generated credentials are kept in ${generated.file}; set them in the environment to replace them.`
        : `Generated credentials are kept in ${generated.file}; \`${showCommand}\` shows them.`,
    );
  }
  return `${lines.join('\n')}\n`;
};

export const defaultPublicUrl = (config: Config, port: number): string =>
  (config.publicUrl ?? `http://localhost:${port}`).replace(/\/+$/, '');

export const registerCredentialsCommand = (program: Command): void => {
  program
    .command('credentials')
    .description('show the webhook URLs and the credentials calltrail generated in its data directory')
    .action(async () => {
      const config = loadConfigOrReport();
      if (config === undefined) process.exit(1);
      const logger = createLogger({
        level: config.logLevel,
        destination: pino.destination({ dest: 2, sync: true }),
      });
      try {
        const { config: effective, generated } = planStores(config).embeddedDefault
          ? await applyGeneratedSecrets(config, logger, { generate: false })
          : { config, generated: undefined };
        const notYetGenerated =
          generated !== undefined &&
          ((generated.webhookSecret && effective.webhook.secret === undefined) ||
            (generated.apiToken && effective.apiTokens.length === 0));
        if (notYetGenerated) {
          process.stderr.write(
            `calltrail: no credentials have been generated in ${generated.file} yet; start calltrail once (calltrail serve)\n`,
          );
          process.exit(1);
        }
        process.stdout.write(
          connectionInstructions(effective, generated, defaultPublicUrl(effective, effective.port), true),
        );
      } catch (error) {
        process.stderr.write(`calltrail: ${oneLine(error)}\n`);
        process.exit(1);
      }
    });
};
