//! `--web-app`: the demo's services as a backend to develop a web app against
//! (README, "Integrating a Next.js app"). The TypeScript client names subjects without
//! a namespace, as a deployment does, so the services run without one on this
//! machine's own NATS server; the settings the app needs go to a file only the user
//! can read (the web app's private key is a secret), in the form Next.js reads from
//! `.env.local`.

use std::path::{Path, PathBuf};

/// What a Next.js app (examples/nextjs) is configured with to use the demo's services.
pub struct WebAppEnv {
    /// `NATS_URL` of the services.
    pub nats_url: String,
    /// Whether the services connect with a NATS user (a server with auth).
    pub nats_auth: bool,
    /// `SAGA_PUBLIC_KEY`: the services' public key, which passwords are sealed to.
    pub saga_public_key: String,
    /// `WEB_APP_PRIVATE_KEYS`: the private entry whose public half user-step seals to.
    pub web_app_private_keys: String,
    /// `PARENT_DOMAIN` of the workspaces.
    pub parent_domain: String,
}

impl WebAppEnv {
    /// The `.env.local` text: one `NAME=value` a line, as the example reads them.
    pub fn dotenv(&self) -> String {
        let mut text = format!("NATS_URL={}\n", self.nats_url);
        if self.nats_auth {
            text.push_str(
                "# The server has auth: the web app's own user (deploy/nats/auth.conf), not the demo's\n\
                 NATS_USER=web-app\nNATS_PASSWORD=\n",
            );
        }
        text.push_str(&format!(
            "SAGA_PUBLIC_KEY={}\nWEB_APP_PRIVATE_KEYS={}\nPARENT_DOMAIN={}\n",
            self.saga_public_key, self.web_app_private_keys, self.parent_domain
        ));
        text
    }

    /// Writes [`Self::dotenv`] to `<dir>/web-app.env` (mode 0600) and prints how to
    /// use it; the private key itself is not printed.
    pub fn announce(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        let path = dir.join("web-app.env");
        crate::write_private(&path, &self.dotenv())?;
        println!(
            "\n{BOLD}--web-app:{RESET} a web app can sign up against these services (subjects without a namespace, on {}).\n  \
             Its environment is in {BOLD}{}{RESET} (mode 0600: it holds the web app's private key):\n    \
             NATS_URL={}{}\n    SAGA_PUBLIC_KEY={}\n    WEB_APP_PRIVATE_KEYS=<the web app's private key, in that file>\n    PARENT_DOMAIN={}\n  \
             For the example: {BOLD}cp {} examples/nextjs/.env.local && (cd examples/nextjs && npm run dev){RESET}",
            self.nats_url,
            path.display(),
            self.nats_url,
            if self.nats_auth {
                "\n    NATS_USER=web-app, NATS_PASSWORD=<its password> (the server has auth)"
            } else {
                ""
            },
            self.saga_public_key,
            self.parent_domain,
            path.display(),
            BOLD = crate::BOLD,
            RESET = crate::RESET,
        );
        Ok(path)
    }
}
