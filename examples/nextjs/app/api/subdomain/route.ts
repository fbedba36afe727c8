// GET /api/subdomain?subdomain=acme: whether it can be had, for the form's live check
// (`tenant.subdomain.check` through the saga client).
import { saga } from "@/lib/saga";

export const dynamic = "force-dynamic";

export async function GET(request: Request): Promise<Response> {
  const subdomain = new URL(request.url).searchParams.get("subdomain") ?? "";
  if (subdomain.length > 63) {
    return Response.json({ subdomain, available: false, reason: "invalid", message: "That is too long." });
  }
  try {
    return Response.json(await (await saga()).checkSubdomain(subdomain));
  } catch (error) {
    console.error("subdomain check failed", error);
    return Response.json({ error: "The check is not available right now." }, { status: 503 });
  }
}
