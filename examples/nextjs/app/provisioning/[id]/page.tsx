// The provisioning page of one signup: the stages stream in from the progress route.
import { Provisioning } from "./provisioning";

export const dynamic = "force-dynamic";

export default async function ProvisioningPage({ params }: { params: Promise<{ id: string }> }) {
  const { id } = await params;
  const seconds = Number(process.env.WORKSPACE_REDIRECT_SECONDS ?? "3");
  return (
    <>
      <h1>Setting up your workspace</h1>
      <Provisioning sagaId={id} redirectSeconds={Number.isFinite(seconds) ? seconds : 3} />
    </>
  );
}
