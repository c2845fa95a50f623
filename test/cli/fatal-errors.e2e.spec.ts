/**
 * An uncaught exception or unhandled rejection ends the process with exit code 1 and exactly one
 * fatal pino line on stderr naming the error, rather than running on in an unknown state or dying
 * with a bare stack trace.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const fixture = fileURLToPath(new URL('./fixtures/uncaught-error.ts', import.meta.url));

const runFixture = (how: 'rejection' | 'exception') =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', fixture, how], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the process did not exit: ${stderr}`));
    }, 20_000);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });

describe('uncaught errors', () => {
  it.each([
    ['rejection', 'unhandled promise rejection; exiting'],
    ['exception', 'uncaught exception; exiting'],
  ] as const)('an unhandled %s ends the process with one fatal log line', async (how, message) => {
    const { code, stdout, stderr } = await runFixture(how);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    const lines = stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    const line = JSON.parse(lines[0]!) as { level: number; msg: string; err: { message: string } };
    expect(line.level).toBe(60);
    expect(line.msg).toBe(message);
    expect(line.err.message).toBe('the archive fell over');
  });
});
