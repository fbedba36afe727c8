// GENERATED from schemas/tenant.signup.requested.json by scripts/generate-types.mjs: do not edit.
// Regenerate with `npm run generate`; `npm run check:generated` fails when it drifts.

/**
 * A secret sealed with HPKE to the key pair that must open it: `v2:<key id>:` followed
 * by standard base64 of `enc || ciphertext`, bound to its saga and field (README,
 * "Sealed secrets"). Opening it needs the `secrets` crate or any HPKE library.
 */
export type Sealed = string;
/**
 * How the admin signed up.
 */
export type AuthProvider = "password" | "google";

/**
 * A signup as the web app publishes it (contract v1).
 */
export interface SignupRequested {
  /**
   * Email of the workspace's first System Manager.
   */
  admin_email: string;
  /**
   * Full name of that user.
   */
  admin_full_name: string;
  /**
   * Password of that user in clear; absent for Google sign-in (then generated).
   * Kept for older clients: prefer `admin_password_sealed`.
   */
  admin_password?: string | null;
  /**
   * The same password sealed to the orchestrator's public key (`SAGA_PUBLIC_KEY`),
   * bound to this `signup_id` and the field `admin_password` (README, "Sealed
   * values"), so it never rests in clear on the bus. Give this or `admin_password`,
   * not both.
   */
  admin_password_sealed?: Sealed | null;
  /**
   * `password` or `google`; inferred from `admin_password` when absent.
   */
  auth_provider?: AuthProvider | null;
  /**
   * The customer's organization, shown in the workspace.
   */
  organization_name: string;
  /**
   * When the user pressed the button.
   */
  requested_at?: string | null;
  /**
   * UUID chosen by the client; it becomes the saga id. The same id again is the same request.
   */
  signup_id: string;
  /**
   * Wanted subdomain; derived from `organization_name` when absent.
   */
  subdomain?: string | null;
}
