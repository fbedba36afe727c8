import type { ReactNode } from "react";

import "./styles.css";

export const metadata = {
  title: "Create your workspace",
  description: "Sign up for an ERPNext workspace",
};

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <html lang="en">
      <body>
        <main>{children}</main>
      </body>
    </html>
  );
}
