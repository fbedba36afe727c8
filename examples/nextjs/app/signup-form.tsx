"use client";
// The signup form: organization, subdomain (checked as the user types), email, full
// name, password; its server action publishes the signup. A refusal is shown next to
// the field it is about.
import { useActionState, useEffect, useState } from "react";

import { signUp, type SignupState } from "./actions";

type Check = { state: "idle" | "checking" | "ok" | "bad"; message: string };

/** The subdomain the orchestrator derives from an organization name when none is given. */
function derive(organization: string): string {
  return organization
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 32)
    .replace(/-+$/, "");
}

export function SignupForm({ signupId, parentDomain }: { signupId: string; parentDomain: string }) {
  const [state, action, pending] = useActionState<SignupState, FormData>(signUp, { signupId });
  const [organization, setOrganization] = useState("");
  const [subdomain, setSubdomain] = useState("");
  const [email, setEmail] = useState("");
  const [fullName, setFullName] = useState("");
  const [check, setCheck] = useState<Check>({ state: "idle", message: "" });
  const wanted = subdomain.trim().toLowerCase() || derive(organization);

  // The live check, a moment after the user stops typing.
  useEffect(() => {
    if (!wanted) {
      setCheck({ state: "idle", message: "" });
      return;
    }
    setCheck({ state: "checking", message: "Checking…" });
    const stop = new AbortController();
    const timer = setTimeout(async () => {
      try {
        const answer = await fetch(`/api/subdomain?subdomain=${encodeURIComponent(wanted)}`, { signal: stop.signal });
        const body = await answer.json();
        if (!answer.ok) setCheck({ state: "idle", message: "" });
        else if (body.available) setCheck({ state: "ok", message: `${wanted}.${parentDomain} is available` });
        else setCheck({ state: "bad", message: body.message.charAt(0).toUpperCase() + body.message.slice(1) });
      } catch {
        // Aborted by the next keystroke, or the check is away: the signup still tells.
      }
    }, 300);
    return () => {
      stop.abort();
      clearTimeout(timer);
    };
  }, [wanted, parentDomain]);

  // The server's refusal of this very subdomain says it already: no second message.
  const refusedHere = state.field === "subdomain" && (state.subdomain ?? "") === subdomain.trim().toLowerCase();
  const fieldError = (field: string) =>
    state.field === field ? (
      <div className="hint bad" role="alert" data-testid={`${field}-error`}>
        {state.error}
      </div>
    ) : null;

  return (
    <form action={action} noValidate>
      <input type="hidden" name="signup_id" value={state.signupId} />
      <label htmlFor="organization_name">Organization</label>
      <input id="organization_name" name="organization_name" required value={organization} onChange={(e) => setOrganization(e.target.value)} />
      {fieldError("organization_name")}

      <label htmlFor="subdomain">Subdomain</label>
      <div className="subdomain">
        <input id="subdomain" name="subdomain" placeholder={derive(organization)} value={subdomain} onChange={(e) => setSubdomain(e.target.value)} aria-describedby="subdomain-check" autoCapitalize="none" autoCorrect="off" spellCheck={false} />
        <span>.{parentDomain}</span>
      </div>
      <div id="subdomain-check" data-testid="subdomain-check" className={`hint ${check.state}`} aria-live="polite">
        {refusedHere ? null : check.message}
      </div>
      {fieldError("subdomain")}

      <label htmlFor="admin_email">Work email</label>
      <input id="admin_email" name="admin_email" type="email" required value={email} onChange={(e) => setEmail(e.target.value)} />
      {fieldError("admin_email")}

      <label htmlFor="admin_full_name">Full name</label>
      <input id="admin_full_name" name="admin_full_name" required value={fullName} onChange={(e) => setFullName(e.target.value)} />
      {fieldError("admin_full_name")}

      <label htmlFor="admin_password">Password</label>
      <input id="admin_password" name="admin_password" type="password" required autoComplete="new-password" />
      {fieldError("admin_password")}

      {state.error && !state.field ? (
        <p className="error" role="alert">
          {state.error}
        </p>
      ) : null}
      <button type="submit" disabled={pending}>
        {pending ? "Creating…" : "Create workspace"}
      </button>
    </form>
  );
}
