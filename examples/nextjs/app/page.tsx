// The signup page: a fresh signup id per rendering, kept in the form, so that the same
// form sent twice is one signup.
import { randomUUID } from "node:crypto";

import { SignupForm } from "./signup-form";

export const dynamic = "force-dynamic";

export default function SignupPage() {
  return (
    <>
      <h1>Create your workspace</h1>
      <SignupForm signupId={randomUUID()} parentDomain={process.env.PARENT_DOMAIN ?? "localhost"} />
    </>
  );
}
