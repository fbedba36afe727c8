// GENERATED from schemas/saga.admin.dead_letters.requeue.reply.json by scripts/generate-types.mjs: do not edit.
// Regenerate with `npm run generate`; `npm run check:generated` fails when it drifts.

/**
 * What a requeue did to the letter's saga.
 */
export type RequeueOutcome = "replayed" | "resent" | "already_requeued";
/**
 * Where a saga stands as a whole.
 */
export type SagaStatus =
  "accepted" | "running" | "compensating" | "completed" | "rolled_back" | "rejected" | "compensation_failed";

/**
 * Reply on `saga.admin.dead_letters.requeue`.
 */
export interface RequeueReply {
  /**
   * Whether the saga was re-driven now.
   */
  accepted: boolean;
  /**
   * Why the request was refused: `not_found` (no such letter), `not_requeueable`
   * (the saga is in no state to re-drive), `signup_not_requeueable` (a signup's
   * letter: the user signs up again).
   */
  error?: ErrorInfo | null;
  /**
   * What happens now, or why nothing does, and what to do instead.
   */
  message: string;
  /**
   * What was done (absent when refused).
   */
  outcome?: RequeueOutcome | null;
  /**
   * The saga it names, when it names one.
   */
  saga_id?: string | null;
  /**
   * The letter asked for.
   */
  sequence: number;
  /**
   * The saga's status after the request.
   */
  status?: SagaStatus | null;
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
