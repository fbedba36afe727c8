// GENERATED from schemas/saga.admin.dead_letters.reply.json by scripts/generate-types.mjs: do not edit.
// Regenerate with `npm run generate`; `npm run check:generated` fails when it drifts.

/**
 * Reply on `saga.admin.dead_letters`.
 */
export interface DeadLettersReply {
  /**
   * Set when the stream could not be read.
   */
  error?: ErrorInfo | null;
  /**
   * Newest first.
   */
  letters: DeadLetterEntry[];
}
/**
 * What went wrong, in words a person understands. Never contains a secret.
 */
export interface ErrorInfo {
  /**
   * On `compensation_failed`: the failure that started the rollback (this error
   * is then the undo's). Absent otherwise.
   */
  cause?: ErrorInfo | null;
  /**
   * Machine-readable code, such as `subdomain_taken` or `database_conflict`.
   */
  code: string;
  /**
   * A sentence for people.
   */
  message: string;
  /**
   * The step it happened in, when it happened in one.
   */
  step?: string | null;
}
/**
 * One dead letter as stored on stream `TENANT_DEAD_LETTERS`.
 */
export interface DeadLetterEntry {
  /**
   * The letter: a `DeadLetter` or a `StepDeadLetter` (schemas
   * `tenant.signup.dead_letter.json`, `internal/saga.dead_letter.json`). Never holds
   * a secret.
   */
  letter: {
    [k: string]: unknown;
  };
  /**
   * Its sequence in the stream.
   */
  sequence: number;
  /**
   * `tenant.signup.dead_letter` (a signup) or `saga.dead_letter.<source>` (a step
   * command, or a report the orchestrator gave up on).
   */
  subject: string;
}
