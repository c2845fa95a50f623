/**
 * The `calltrail` command line. Each command lives in its own module and registers itself here.
 */
import { Command } from 'commander';
import { registerCredentialsCommand } from './credentials.ts';
import { registerExportCommand } from './export.ts';
import { registerForwardCommand } from './forward.ts';
import { registerDeliveriesCommand } from './deliveries.ts';
import { exitOnUncaughtErrors } from './fatal-errors.ts';
import { registerMigrateCommand } from './migrate.ts';
import { registerProjectCommand } from './project.ts';
import { registerRebuildCommand } from './rebuild.ts';
import { registerReplayCommand } from './replay.ts';
import { registerSealCommand } from './seal.ts';
import { registerServeCommand } from './serve.ts';
import { registerVerifyCommand } from './verify.ts';

exitOnUncaughtErrors();

const program = new Command()
  .name('calltrail')
  .description('Audit and compliance archive for Flireo AI voice-call server events')
  .showHelpAfterError();

registerServeCommand(program);
registerMigrateCommand(program);
registerProjectCommand(program);
registerRebuildCommand(program);
registerExportCommand(program);
registerReplayCommand(program);
registerCredentialsCommand(program);
registerSealCommand(program);
registerVerifyCommand(program);
registerForwardCommand(program);
registerDeliveriesCommand(program);

await program.parseAsync(process.argv);
