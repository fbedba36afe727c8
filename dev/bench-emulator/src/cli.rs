//! Click-like argument parsing: the same usage errors, words and exit codes as bench.

use std::collections::HashMap;

use crate::{execute, http, say, site, users, Bench};

/// One command's options: `(name, takes a value)`, and its positional arguments.
pub struct Spec {
    pub name: &'static str,
    pub usage: &'static str,
    pub options: &'static [(&'static str, bool)],
    pub positionals: &'static [&'static str],
}

/// Parsed arguments.
#[derive(Debug, Default)]
pub struct Parsed {
    pub values: HashMap<String, String>,
    pub flags: Vec<String>,
    pub positionals: Vec<String>,
}

impl Parsed {
    /// An option's value.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Whether a flag was given.
    pub fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }
}

fn usage_error(spec: &Spec, message: &str) -> u8 {
    eprintln!("Usage: bench {} {}", spec.name, spec.usage);
    eprintln!("Try 'bench {} --help' for help.", spec.name);
    eprintln!();
    eprintln!("Error: {message}");
    2
}

/// Parses `args` against `spec`; on a usage error prints Click's message.
pub fn parse(spec: &Spec, args: &[String]) -> Result<Parsed, u8> {
    let mut parsed = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg.starts_with('-') && arg.len() > 1 {
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            let Some((_, takes_value)) = spec.options.iter().find(|(n, _)| *n == name) else {
                return Err(usage_error(spec, &format!("No such option: {name}")));
            };
            if *takes_value {
                let value = match inline {
                    Some(v) => v,
                    None => {
                        i += 1;
                        match args.get(i) {
                            Some(v) => v.clone(),
                            None => {
                                return Err(usage_error(
                                    spec,
                                    &format!("Option '{name}' requires an argument."),
                                ))
                            }
                        }
                    }
                };
                parsed.values.insert(name, value);
            } else {
                parsed.flags.push(name);
            }
        } else {
            parsed.positionals.push(arg.clone());
        }
        i += 1;
    }
    if parsed.positionals.len() < spec.positionals.len() {
        let missing = spec.positionals[parsed.positionals.len()];
        return Err(usage_error(spec, &format!("Missing argument '{missing}'.")));
    }
    let variadic = spec.positionals.last().is_some_and(|p| p.ends_with("..."));
    if parsed.positionals.len() > spec.positionals.len() && !variadic {
        let extra = &parsed.positionals[spec.positionals.len()];
        return Err(usage_error(
            spec,
            &format!("Got unexpected extra argument ({extra})"),
        ));
    }
    Ok(parsed)
}

const NEW_SITE: Spec = Spec {
    name: "new-site",
    usage: "[OPTIONS] SITE",
    options: &[
        ("--db-name", true),
        ("--db-password", true),
        ("--db-type", true),
        ("--db-host", true),
        ("--db-port", true),
        ("--db-root-username", true),
        ("--db-root-password", true),
        ("--admin-password", true),
        ("--verbose", false),
        ("--force", false),
        ("--source-sql", true),
        ("--install-app", true),
        ("--set-default", false),
        ("--setup-db", false),
        ("--no-setup-db", false),
        ("--help", false),
    ],
    positionals: &["SITE"],
};

const INSTALL_APP: Spec = Spec {
    name: "install-app",
    usage: "[OPTIONS] APPS...",
    options: &[("--force", false), ("--help", false)],
    positionals: &["APPS..."],
};

const ENABLE_SCHEDULER: Spec = Spec {
    name: "enable-scheduler",
    usage: "[OPTIONS]",
    options: &[("--help", false)],
    positionals: &[],
};

const SET_CONFIG: Spec = Spec {
    name: "set-config",
    usage: "[OPTIONS] KEY VALUE",
    options: &[
        ("-g", false),
        ("--global", false),
        ("-p", false),
        ("--parse", false),
        ("--help", false),
    ],
    positionals: &["KEY", "VALUE"],
};

const EXECUTE: Spec = Spec {
    name: "execute",
    usage: "[OPTIONS] METHOD",
    options: &[
        ("--args", true),
        ("--kwargs", true),
        ("--profile", false),
        ("--help", false),
    ],
    positionals: &["METHOD"],
};

const ADD_SYSTEM_MANAGER: Spec = Spec {
    name: "add-system-manager",
    usage: "[OPTIONS] EMAIL",
    options: &[
        ("--first-name", true),
        ("--last-name", true),
        ("--password", true),
        ("--send-welcome-email", false),
        ("--help", false),
    ],
    positionals: &["EMAIL"],
};

const DISABLE_USER: Spec = Spec {
    name: "disable-user",
    usage: "[OPTIONS] EMAIL",
    options: &[("--help", false)],
    positionals: &["EMAIL"],
};

const SERVE: Spec = Spec {
    name: "serve",
    usage: "[OPTIONS]",
    options: &[
        ("--port", true),
        ("--profile", false),
        ("--proxy", false),
        ("--noreload", false),
        ("--nothreading", false),
        ("--with-coverage", false),
        ("--help", false),
    ],
    positionals: &[],
};

/// Runs `bench <args>`; returns the exit code.
pub fn dispatch(bench: &Bench, args: &[String]) -> u8 {
    let mut args = args.to_vec();
    let mut site = None;
    if args.first().map(String::as_str) == Some("--site") {
        if args.len() < 2 {
            eprintln!("Error: Option '--site' requires an argument.");
            return 2;
        }
        site = Some(args[1].clone());
        args.drain(..2);
    }
    let Some(command) = args.first().cloned() else {
        say("Usage: bench [OPTIONS] COMMAND [ARGS]...");
        return 0;
    };
    let rest = &args[1..];
    let needs_site = |site: &Option<String>| -> Result<String, u8> {
        match site {
            Some(s) if bench.sites().join(s).join("site_config.json").is_file() => Ok(s.clone()),
            Some(s) => {
                say(&format!("Site {s} does not exist!"));
                Err(1)
            }
            None => {
                say("Please specify --site sitename");
                Err(1)
            }
        }
    };
    let run = |spec: &Spec, f: &dyn Fn(Parsed) -> u8| match parse(spec, rest) {
        Ok(parsed) => {
            // In real durations a command's work is played before it acts, except
            // where progress lines spread it (new-site, install-app) and for `serve`,
            // which answers each request in its own time. A usage error costs the
            // start only.
            if !matches!(spec.name, "new-site" | "install-app" | "serve") {
                let method = (spec.name == "execute")
                    .then(|| parsed.positionals.first())
                    .flatten();
                std::thread::sleep(bench.timing().work(spec.name, method.map(String::as_str)));
            }
            f(parsed)
        }
        Err(code) => code,
    };
    match command.as_str() {
        "new-site" => run(&NEW_SITE, &|p| site::new_site(bench, p)),
        "install-app" => run(&INSTALL_APP, &|p| {
            needs_site(&site).map_or_else(|c| c, |s| site::install_app(bench, &s, p))
        }),
        "enable-scheduler" => run(&ENABLE_SCHEDULER, &|_| {
            needs_site(&site).map_or_else(|c| c, |s| site::enable_scheduler(bench, &s))
        }),
        "set-config" => run(&SET_CONFIG, &|p| {
            needs_site(&site).map_or_else(|c| c, |s| site::set_config(bench, &s, p))
        }),
        "execute" => run(&EXECUTE, &|p| {
            needs_site(&site).map_or_else(|c| c, |s| execute::execute(bench, &s, p))
        }),
        "add-system-manager" => run(&ADD_SYSTEM_MANAGER, &|p| {
            needs_site(&site).map_or_else(|c| c, |s| users::add_system_manager(bench, &s, p))
        }),
        "disable-user" => run(&DISABLE_USER, &|p| {
            needs_site(&site).map_or_else(|c| c, |s| users::disable_user(bench, &s, p))
        }),
        "serve" => run(&SERVE, &|p| http::serve(bench, p)),
        "version" => {
            std::thread::sleep(bench.timing().work("version", None));
            if let Some(code) = site::scripted(bench, "version", None, None) {
                return code;
            }
            say("frappe 15.44.2 (bench-emulator)");
            0
        }
        other => {
            eprintln!("Usage: bench [OPTIONS] COMMAND [ARGS]...");
            eprintln!("Try 'bench --help' for help.");
            eprintln!();
            eprintln!("Error: No such command '{other}'.");
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn options_v15_lacks_are_usage_errors() {
        assert_eq!(
            parse(
                &NEW_SITE,
                &args(&["a.localhost", "--mariadb-user-host-login-scope", "%"])
            )
            .err(),
            Some(2)
        );
        assert_eq!(
            parse(&NEW_SITE, &args(&["a.localhost", "--db-name"])).err(),
            Some(2)
        );
        assert_eq!(parse(&NEW_SITE, &args(&[])).err(), Some(2));
        let parsed = parse(
            &NEW_SITE,
            &args(&[
                "a.localhost",
                "--no-setup-db",
                "--db-name=x",
                "--admin-password",
                "p",
            ]),
        )
        .expect("valid");
        assert_eq!(parsed.value("--db-name"), Some("x"));
        assert!(parsed.flag("--no-setup-db"));
        assert_eq!(parsed.positionals, ["a.localhost"]);
    }
}
