// GENERATED from schemas/tenant.signup.dead_letter.json by scripts/generate-types.mjs: do not edit.
// Regenerate with `npm run generate`; `npm run check:generated` fails when it drifts.

/**
 * What goes to a dead-letter subject (`tenant.signup.dead_letter` for signups).
 */
export interface DeadLetter {
  /**
   * When it was set aside.
   */
  at: string;
  /**
   * Why it was set aside.
   */
  error: string;
  /**
   * JSON: the payload with every string masked but the signup contract's harmless
   * fields (`signup_id`, `organization_name`, `subdomain`, `admin_email`,
   * `admin_full_name`, `auth_provider`, `requested_at`), cut to
   * 4 KiB. Anything else: a masked excerpt of its first 256 characters (field
   * names and punctuation only, every value `***`; `…` when cut).
   */
  payload: string;
  /**
   * Size of the original payload in bytes.
   */
  payload_bytes: number;
  /**
   * SHA-256 of the original payload, lowercase hex (absent in letters written
   * before it was added).
   */
  payload_sha256?: string | null;
  /**
   * The subject the message arrived on.
   */
  subject: string;
}
