/** The one error every part of the embedded server reports, with a message meant for the operator. */
export class EmbeddedPostgresError extends Error {
  override readonly name = 'EmbeddedPostgresError';
}
