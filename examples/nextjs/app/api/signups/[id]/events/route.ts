// GET /api/signups/<saga id>/events: the saga's progress as Server-Sent Events, relayed
// from the bus by the saga client (`event: progress`, `id: <sequence>`); a browser that
// reconnects with `Last-Event-ID: n` gets the events after n, none twice. The stream
// ends after the saga's terminal event. Only the browser that sent the signup may
// follow it (its HTTP-only cookie names the saga, signed by the server: lib/signup-cookie.ts).
import { cookies } from "next/headers";

import { publicEvent } from "@/lib/progress";
import { SIGNUP_COOKIE, isSignupCookieFor, saga } from "@/lib/saga";

export const dynamic = "force-dynamic";

export async function GET(request: Request, context: { params: Promise<{ id: string }> }): Promise<Response> {
  const { id } = await context.params;
  if (!isSignupCookieFor((await cookies()).get(SIGNUP_COOKIE)?.value, id)) {
    return Response.json({ error: "not your signup" }, { status: 403 });
  }
  const after = Number.parseInt(request.headers.get("last-event-id") ?? "0", 10) || 0;
  const client = await saga();
  const stop = new AbortController();
  request.signal.addEventListener("abort", () => stop.abort());
  const encoder = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    async start(controller) {
      // A comment now and then keeps proxies from closing a quiet stream.
      const keepAlive = setInterval(() => controller.enqueue(encoder.encode(": keep-alive\n\n")), 15_000);
      try {
        for await (const event of client.progress(id, { fromSequence: after + 1, signal: stop.signal })) {
          const data = JSON.stringify(publicEvent(event));
          controller.enqueue(encoder.encode(`event: progress\nid: ${event.sequence}\ndata: ${data}\n\n`));
        }
      } catch (error) {
        console.error("progress relay failed", error);
      } finally {
        clearInterval(keepAlive);
        try {
          controller.close();
        } catch {
          // Already closed by the browser going away.
        }
      }
    },
    cancel() {
      stop.abort();
    },
  });
  return new Response(body, {
    headers: {
      "Content-Type": "text/event-stream; charset=utf-8",
      "Cache-Control": "no-cache, no-transform",
      "X-Accel-Buffering": "no",
    },
  });
}
