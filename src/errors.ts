/**
 * The few errors calltrail's shared code throws when a request cannot be served: the HTTP layer
 * maps them to problem+json in one place (`http/problem.ts`), the command line to its usage
 * errors. Neither the code that throws them nor the command line knows anything of HTTP.
 */
import type { Problem } from './archive/archived-event.ts';

/** An argument was refused; each problem names the field (or option) at fault and why. */
export class InvalidArgumentError extends Error {
  override readonly name = 'InvalidArgumentError';
  constructor(readonly problems: readonly Problem[]) {
    super(problems.map((problem) => `${problem.field}: ${problem.message}`).join('; '));
  }
}

/** What was asked for does not exist. */
export class NotFoundError extends Error {
  override readonly name = 'NotFoundError';
}

/** A store the answer depends on cannot be reached now; worth trying again after `retryAfterSeconds`. */
export class UnavailableError extends Error {
  override readonly name = 'UnavailableError';
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** A single refused field. */
export const invalidArgument = (field: string, message: string): InvalidArgumentError =>
  new InvalidArgumentError([{ field, message }]);
