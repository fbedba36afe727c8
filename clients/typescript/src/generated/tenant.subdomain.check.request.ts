// GENERATED from schemas/tenant.subdomain.check.request.json by scripts/generate-types.mjs: do not edit.
// Regenerate with `npm run generate`; `npm run check:generated` fails when it drifts.

/**
 * Request on `tenant.subdomain.check`.
 */
export interface SubdomainCheckRequest {
  /**
   * The subdomain to check, as the user typed it.
   */
  subdomain: string;
}
