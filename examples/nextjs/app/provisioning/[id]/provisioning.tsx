"use client";
// Follows the saga through the progress route (Server-Sent Events; the browser's
// EventSource resumes with Last-Event-ID by itself) and shows each stage; at the end
// either the workspace's link (its API token set in a cookie by a server action, then
// a redirect) or what went wrong and that everything made was removed.
import { useEffect, useState } from "react";

import { finishSignup } from "../../actions";
import { isOver, stagesOf, type PublicEvent } from "@/lib/progress";

const STATE_TEXT = {
  running: "In progress…",
  retrying: "Retrying…",
  done: "Done",
  failed: "Failed",
  undoing: "Removing…",
  undone: "Removed",
} as const;

export function Provisioning({ sagaId, redirectSeconds }: { sagaId: string; redirectSeconds: number }) {
  const [events, setEvents] = useState<PublicEvent[]>([]);
  const [link, setLink] = useState<string | null>(null);
  const [problem, setProblem] = useState<string | null>(null);

  useEffect(() => {
    const source = new EventSource(`/api/signups/${sagaId}/events`);
    source.addEventListener("progress", (message) => {
      const event = JSON.parse((message as MessageEvent<string>).data) as PublicEvent;
      setEvents((seen) => (seen.some((e) => e.sequence === event.sequence) ? seen : [...seen, event]));
      // Over: no reconnect (the stream ended on purpose).
      if (isOver(event)) source.close();
    });
    // A network hiccup: the EventSource reconnects by itself (state CONNECTING). An
    // answer that is not a stream (403: not this browser's signup; 500) closes it for
    // good: say so rather than wait forever.
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        setProblem(
          "We cannot show the progress of this signup: it was not started in this browser, " +
            "or the server failed. Reload the page to try again.",
        );
      }
    });
    return () => source.close();
  }, [sagaId]);

  const last = events.at(-1);
  useEffect(() => {
    if (last?.status !== "completed") return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    finishSignup(sagaId)
      .then((answer) => {
        if ("error" in answer) return setProblem(answer.error);
        setLink(answer.url);
        if (redirectSeconds > 0) timer = setTimeout(() => window.location.assign(answer.url), redirectSeconds * 1000);
      })
      .catch(() => {
        // The server action itself failed (the server is away, or it threw).
        setProblem("Your workspace is ready, but we could not sign you in to it just now; please reload this page.");
      });
    return () => clearTimeout(timer);
  }, [last?.status, sagaId, redirectSeconds]);

  const stages = stagesOf(events);
  // The step whose failure started the rollback (the error names it).
  const failedStage = stages.find((s) => s.step === last?.error?.step);
  return (
    <>
      <progress max={100} value={last?.percent ?? 0} aria-label="progress" />
      {last || problem ? null : <p>Waiting for the first news…</p>}
      <ol className="stages">
        {stages.map((stage) => (
          <li key={stage.step} data-step={stage.step} data-state={stage.state}>
            {stage.label}
            <span className="state">{STATE_TEXT[stage.state]}</span>
            {stage.detail && stage.state !== "done" ? <span className="detail">{stage.detail}</span> : null}
          </li>
        ))}
      </ol>
      <div className="outcome" data-testid="outcome" aria-live="polite">
        {last?.status === "completed" ? (
          <>
            <h2>Workspace ready! {link && redirectSeconds > 0 ? "Redirecting…" : null}</h2>
            {link ? (
              <p>
                Your workspace: <a href={link}>{link}</a>
              </p>
            ) : null}
          </>
        ) : null}
        {last?.status === "rolled_back" || last?.status === "compensation_failed" || last?.status === "rejected" ? (
          <div role="alert">
            <h2>Your workspace could not be created</h2>
            <p className="error">{failedStage ? `${failedStage.label} failed.` : last.message}</p>
            <p>
              {last.status === "rolled_back"
                ? "Everything that had been set up for it was removed. You can sign up again."
                : last.status === "rejected"
                  ? "Nothing was created. You can sign up again."
                  : "Cleaning up did not finish; our team has been alerted and will finish it."}
            </p>
            {last.error ? (
              <details>
                <summary>Details</summary>
                <p className="detail">{last.error.message}</p>
              </details>
            ) : null}
          </div>
        ) : null}
        {problem ? (
          <p className="error" role="alert" data-testid="problem">
            {problem}
          </p>
        ) : null}
      </div>
    </>
  );
}
