/**
 * The `calltrail` command line. Each command lives in its own module and registers itself here.
 */
import { Command } from 'commander';
import { registerServeCommand } from './serve.ts';

const program = new Command()
  .name('calltrail')
  .description('Audit and compliance archive for Flireo AI voice-call server events')
  .showHelpAfterError();

registerServeCommand(program);

await program.parseAsync(process.argv);
