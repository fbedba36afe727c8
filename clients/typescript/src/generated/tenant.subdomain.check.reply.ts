// GENERATED from schemas/tenant.subdomain.check.reply.json by scripts/generate-types.mjs: do not edit.
// Regenerate with `npm run generate`; `npm run check:generated` fails when it drifts.

/**
 * Why a subdomain cannot be had.
 */
export type UnavailableReason = "taken" | "reserved" | "invalid";

/**
 * Reply on `tenant.subdomain.check`.
 */
export interface SubdomainCheckReply {
  /**
   * Whether a signup with it would be accepted now.
   */
  available: boolean;
  /**
   * A sentence for people.
   */
  message: string;
  /**
   * Why not; absent when available.
   */
  reason?: UnavailableReason | null;
  /**
   * The subdomain checked.
   */
  subdomain: string;
}
