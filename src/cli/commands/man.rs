//! `swarmseal man [--dir DIR]`: the main man page on standard output, or every page
//! (`swarmseal.1`, `swarmseal-plan.1`, `swarmseal-recipients-add.1`...) written to DIR.
//!
//! clap_mangen renders what clap knows (name, synopsis, options, subcommands); the sections
//! it does not know (EXAMPLES, EXIT STATUS, ENVIRONMENT, FILES, SEE ALSO) are written here
//! with its `roff`, which escapes the text.

use std::path::Path;

use clap_mangen::roff::{bold, italic, roman, Roff};

use crate::cli::args::ManArgs;
use crate::cli::context::Context;
use crate::cli::help;
use crate::error::{Error, Result};

pub fn run(cx: &Context, args: ManArgs) -> Result<i32> {
    let pages = pages();
    match args.dir {
        None => crate::cli::output::write_stdout(&render(&pages[0], &pages)?)?,
        Some(dir) => {
            std::fs::create_dir_all(&dir).map_err(|e| Error::io("create folder", &dir, e))?;
            for page in &pages {
                write_page(&dir, page, &render(page, &pages)?)?;
            }
            cx.say(format!(
                "Wrote {} man pages to {}",
                pages.len(),
                dir.display()
            ));
        }
    }
    Ok(0)
}

/// One man page: the command, its path (`"recipients add"`; `""` for swarmseal itself) and
/// its page name (`swarmseal-recipients-add`).
struct Page {
    cmd: clap::Command,
    path: String,
    name: String,
}

/// Every page: swarmseal's first, then one per command, nested ones too.
fn pages() -> Vec<Page> {
    fn add(cmd: &clap::Command, path: &str, out: &mut Vec<Page>) {
        out.push(Page {
            cmd: cmd.clone(),
            path: path.to_string(),
            name: cmd.get_display_name().unwrap_or("swarmseal").to_string(),
        });
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            add(sub, &help::command_path(path, sub.get_name()), out);
        }
    }
    let mut root = help::command().disable_help_subcommand(true);
    root.build();
    let mut out = Vec::new();
    add(&root, "", &mut out);
    out
}

fn write_page(dir: &Path, page: &Page, bytes: &[u8]) -> Result<()> {
    let file = dir.join(format!("{}.1", page.name));
    crate::repo::write_atomic(&file, bytes, 0o644)
}

/// The page in roff.
fn render(page: &Page, all: &[Page]) -> Result<Vec<u8>> {
    let cmd = &page.cmd;
    let man = clap_mangen::Man::new(cmd.clone())
        .title(page.name.to_uppercase())
        .source(format!("swarmseal {}", env!("CARGO_PKG_VERSION")))
        .manual("swarmseal manual");
    let mut out = Vec::new();
    let failed = |e: std::io::Error| Error::new(format!("cannot render the man page: {e}"));
    man.render_title(&mut out).map_err(failed)?;
    man.render_name_section(&mut out).map_err(failed)?;
    man.render_synopsis_section(&mut out).map_err(failed)?;
    man.render_description_section(&mut out).map_err(failed)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out).map_err(failed)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(&mut out).map_err(failed)?;
    }
    let mut roff = Roff::new();
    examples(&mut roff, &page.path);
    exit_status(&mut roff, &page.path);
    environment(&mut roff, &page.path);
    files(&mut roff, &page.path);
    see_also(&mut roff, page, all);
    out.extend_from_slice(roff.to_roff().as_bytes());
    Ok(out)
}

fn examples(roff: &mut Roff, path: &str) {
    let list = help::examples(path);
    if list.is_empty() {
        return;
    }
    roff.control("SH", ["EXAMPLES"]);
    for (what, line) in list {
        roff.control("PP", []);
        roff.text([roman(format!("{what}:"))]);
        roff.control("RS", ["4"]);
        roff.control("nf", []);
        roff.text([bold(*line)]);
        roff.control("fi", []);
        roff.control("RE", []);
    }
}

fn exit_status(roff: &mut Roff, path: &str) {
    roff.control("SH", ["EXIT STATUS"]);
    let error = match path {
        "" => "An error, including usage errors (a mistyped option), blocked removals in plan and apply, and service updates that failed or rolled back in apply.",
        "plan" => "An error, including usage errors (a mistyped option) and blocked removals.",
        "apply" => "An error, including usage errors (a mistyped option), blocked removals, and service updates that failed or rolled back.",
        _ => "An error, including usage errors (a mistyped option).",
    };
    let mut codes = vec![("0", "Success."), ("1", error)];
    if path == "rotate" {
        codes[0].1 = "Success, also when --due left due secrets that have no generate: (they are listed; check fails on them).";
    }
    if matches!(path, "" | "plan") {
        codes[0].1 = "Success; with plan --detailed-exitcode, no changes.";
        codes.push(("2", "Changes present (only with plan --detailed-exitcode)."));
    }
    for (code, what) in codes {
        roff.control("TP", []);
        roff.text([bold(code)]);
        roff.text([roman(what)]);
    }
}

/// Where an ENVIRONMENT or FILES entry applies: every command, those to which a global
/// option applies (by its id), or the commands named.
enum Where {
    All,
    Option(&'static str),
    Commands(&'static [&'static str]),
}

impl Where {
    fn covers(&self, path: &str) -> bool {
        match self {
            _ if path.is_empty() => true,
            Where::All => true,
            Where::Option(id) => help::applies(path, id),
            Where::Commands(paths) => paths.contains(&path),
        }
    }
}

const ENVIRONMENT: &[(&str, &str, Where)] = &[
    ("SWARMSEAL_IDENTITY", "Path of the identity file, when no -i is given.", Where::Option("identity")),
    ("SWARMSEAL_AGE_KEY", "Identity text (for CI secret variables), when neither -i nor SWARMSEAL_IDENTITY is given; removed from the environment before any command runs.", Where::Option("identity")),
    ("XDG_CONFIG_HOME, HOME", "Where the default identity file is: $XDG_CONFIG_HOME/swarmseal/identity.txt, else ~/.config/swarmseal/identity.txt.", Where::Commands(&["init", "keygen", "set", "get", "edit", "rekey", "check", "plan", "apply", "exec", "textconv"])),
    ("DOCKER_HOST", "Docker endpoint, when neither -H nor the environment's docker_host is given.", Where::Option("host")),
    ("DOCKER_TLS_VERIFY, DOCKER_CERT_PATH", "TLS of a tcp:// endpoint: the folder of ca.pem, cert.pem and key.pem (else ~/.docker).", Where::Option("host")),
    ("DOCKER_CONTEXT, DOCKER_CONFIG", "The docker context to use, and the folder of the docker CLI's configuration (else ~/.docker).", Where::Option("host")),
    ("VISUAL, EDITOR", "The editor of edit (else vi).", Where::Commands(&["edit"])),
    ("TMPDIR", "Where edit's private temporary folder is made when there is no /dev/shm.", Where::Commands(&["edit"])),
    ("USER", "Recorded as the holder of apply's lock on the Swarm.", Where::Commands(&["apply", "unlock"])),
    ("NO_COLOR, CLICOLOR, CLICOLOR_FORCE, TERM", "Colour, with --color auto: CLICOLOR_FORCE (not 0) forces it; else NO_COLOR or CLICOLOR=0 turns it off; else only on a terminal whose TERM is not dumb.", Where::All),
    ("COMPLETE", "Set by the completion scripts to ask swarmseal for completions; do not set it yourself.", Where::Commands(&["completions"])),
];

fn environment(roff: &mut Roff, path: &str) {
    roff.control("SH", ["ENVIRONMENT"]);
    for (names, what, _) in ENVIRONMENT.iter().filter(|(.., w)| w.covers(path)) {
        roff.control("TP", []);
        roff.text([bold(*names)]);
        roff.text([roman(*what)]);
    }
}

const FILES: &[(&str, &str, Where)] = &[
    ("swarmseal.yaml", "The manifest: project, recipients, groups, environments, per-secret settings. Found in the folder given with -C, else in the current folder or its nearest parent that has one.", Where::Option("repo")),
    ("secrets/<env>/<name>.age", "One age file per secret; sub-folders allowed (secrets/prod/tls/api.crt.age is tls.api.crt).", Where::Option("repo")),
    (".swarmseal/index.yaml", "The index: each value's recipients and when it last changed.", Where::Option("repo")),
    (".swarmseal/fingerprint/<env>.age", "Each environment's fingerprint key, encrypted like a secret.", Where::Option("repo")),
    (".gitattributes", "*.age diff=swarmseal, written by init.", Where::Commands(&["init", "textconv"])),
    ("~/.config/swarmseal/identity.txt", "The default identity ($XDG_CONFIG_HOME/swarmseal/identity.txt when XDG_CONFIG_HOME is set).", Where::Commands(&["init", "keygen", "set", "get", "edit", "rekey", "check", "plan", "apply", "exec", "textconv"])),
    ("~/.docker/", "docker contexts, and ca.pem, cert.pem and key.pem of tcp:// endpoints.", Where::Option("host")),
];

fn files(roff: &mut Roff, path: &str) {
    roff.control("SH", ["FILES"]);
    for (file, what, _) in FILES.iter().filter(|(.., w)| w.covers(path)) {
        roff.control("TP", []);
        roff.text([italic(*file)]);
        roff.text([roman(*what)]);
    }
}

/// swarmseal(1), the parent and the children of this page: every reference is to a page
/// that `man --dir` writes.
fn see_also(roff: &mut Roff, page: &Page, all: &[Page]) {
    let related: Vec<&Page> = all
        .iter()
        .filter(|p| p.name != page.name)
        .filter(|p| {
            p.path.is_empty()
                || page.path.is_empty()
                || page.path.starts_with(&format!("{} ", p.path))
                || p.path.starts_with(&format!("{} ", page.path))
        })
        .collect();
    roff.control("SH", ["SEE ALSO"]);
    let mut line = Vec::new();
    for (i, p) in related.iter().enumerate() {
        if i > 0 {
            line.push(roman(", "));
        }
        line.push(bold(p.name.clone()));
        line.push(roman("(1)"));
    }
    roff.text(line);
}
