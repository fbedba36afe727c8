// GENERATED from schemas/saga.admin.replay.reply.json by scripts/generate-types.mjs: do not edit.
// Regenerate with `npm run generate`; `npm run check:generated` fails when it drifts.

/**
 * Where a saga stands as a whole.
 */
export type SagaStatus =
  "accepted" | "running" | "compensating" | "completed" | "rolled_back" | "rejected" | "compensation_failed";

/**
 * Reply on `saga.admin.replay`.
 */
export interface ReplayReply {
  /**
   * Whether the replay started.
   */
  accepted: boolean;
  /**
   * Why the request was refused.
   */
  error?: ErrorInfo | null;
  /**
   * What happens now, or why nothing does.
   */
  message: string;
  /**
   * The saga asked for.
   */
  saga_id: string;
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
