//! What `--help` and the man pages show beyond the clap definitions of [`crate::cli::args`]:
//! which global options apply to which command, the per-command wording of `-e`, and every
//! command's examples. [`command`] is the one `clap::Command` that parsing, `--help`,
//! completions and man pages all use.

use clap::builder::StyledStr;
use clap::{Arg, CommandFactory};

use crate::cli::args::Cli;

/// The command line, as parsed and documented.
///
/// Global options stay `global = true` on [`Cli`], so that they work before and after the
/// subcommand (`swarmseal -C dir -e prod plan`, `swarmseal plan -e prod`). clap copies a
/// global option into a subcommand only when the subcommand has no argument of that id, so
/// each subcommand is given its own copy first: hidden where the option means nothing to it
/// ([`not_applicable`]), reworded where it means something particular (`-e` of `init`).
/// Values still reach [`crate::cli::args::Global`] (clap propagates a global's value by id),
/// and a hidden option is still accepted, as it always was: only what help shows changes.
/// The alternative, per-command structs of the options that apply, would refuse
/// `swarmseal -e prod keygen` and need every command to merge two sets of values.
pub fn command() -> clap::Command {
    let cmd = Cli::command();
    let globals: Vec<Arg> = cmd
        .get_arguments()
        .filter(|a| a.is_global_set())
        .cloned()
        .collect();
    let cmd = match examples_help("") {
        Some(text) => cmd.after_help(text),
        None => cmd,
    };
    adjust_subcommands(cmd, "", &globals)
}

/// Gives every subcommand below `cmd` (whose path is `parent`) its examples and its own
/// copies of the global options.
fn adjust_subcommands(cmd: clap::Command, parent: &str, globals: &[Arg]) -> clap::Command {
    cmd.mut_subcommands(|mut sub| {
        let path = command_path(parent, sub.get_name());
        if let Some(text) = examples_help(&path) {
            sub = sub.after_help(text);
        }
        for arg in globals {
            let id = arg.get_id().as_str();
            let mut own = arg.clone().hide(not_applicable(&path).contains(&id));
            if let Some(help) = env_help(&path).filter(|_| id == "env") {
                own = own.help(help);
            }
            sub = sub.arg(own);
        }
        adjust_subcommands(sub, &path, globals)
    })
}

/// `"recipients add"` from `"recipients"` and `"add"`; a top-level command's path is its name.
pub fn command_path(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent} {name}")
    }
}

/// The global options (by id) that mean nothing to a command, by its path.
pub fn not_applicable(path: &str) -> &'static [&'static str] {
    match path {
        "keygen" | "completions" | "man" => &["repo", "env", "identity", "host", "format"],
        "textconv" => &["repo", "env", "host", "format"],
        "recipients" | "recipients ls" | "recipients add" | "recipients rm" => {
            &["env", "identity", "host"]
        }
        "init" | "set" | "get" | "edit" | "rekey" | "check" => &["host"],
        "rotate" => &["identity", "host"],
        "rm" => &["identity", "host"],
        "import" | "import compose" | "import dotenv" => &["host"],
        "ls" | "status" | "unlock" => &["identity"],
        _ => &[],
    }
}

/// True when global option `id` applies to the command at `path` (`""`: the main page).
pub fn applies(path: &str, id: &str) -> bool {
    !not_applicable(path).contains(&id)
}

/// What `-e` means to commands that take several environments.
fn env_help(path: &str) -> Option<&'static str> {
    match path {
        "init" => Some("Environment to create (repeatable; default: one named `default`)"),
        "check" | "rekey" => Some("Environment to cover (repeatable; default: every one)"),
        "rotate" => Some("Environment (--due: repeatable, default every one; else the only one)"),
        "" => None,
        _ => Some("Environment (default: the only one in swarmseal.yaml)"),
    }
}

/// One example: what it does, and the command line.
pub type Example = (&'static str, &'static str);

/// The examples of every command, by its path (`""`: `swarmseal` itself).
const EXAMPLES: &[(&str, &[Example])] = &[
    ("", &[
        ("Create a repository with two environments", "swarmseal init -e staging -e production"),
        ("Store a value, typed at a hidden prompt", "swarmseal -e production set db_password"),
        ("Show what apply would change, then do it", "swarmseal -e production plan && swarmseal -e production apply"),
    ]),
    ("init", &[
        ("A repository whose first recipient is your identity (created if you have none)", "swarmseal init -e staging -e production"),
        ("Name the project and the recipients", "swarmseal init --project shop --recipient alice=age1... --recipient ci=age1..."),
    ]),
    ("keygen", &[
        ("Write a new identity to the default file", "swarmseal keygen -o ~/.config/swarmseal/identity.txt"),
        ("Print one for a CI secret variable (SWARMSEAL_AGE_KEY)", "swarmseal keygen"),
    ]),
    ("set", &[
        ("Type the value at a hidden prompt, or pipe it in", "printf %s \"$TOKEN\" | swarmseal -e production set api_token"),
        ("Store a file byte for byte", "swarmseal -e production set tls/api.crt --file api.crt"),
        ("Generate a random value", "swarmseal -e production set session_key --generate --length 48 --charset base64"),
    ]),
    ("get", &[
        ("Print a value", "swarmseal -e production get db_password"),
        ("Save a binary value", "swarmseal -e production get tls.api.crt > api.crt"),
    ]),
    ("edit", &[("Edit a value in your editor", "EDITOR=nano swarmseal -e staging edit app_config")]),
    ("rm", &[("Remove a secret, then remove it from the Swarm", "swarmseal -e staging rm old_token && swarmseal -e staging apply")]),
    ("ls", &[
        ("The repository's secrets", "swarmseal -e production ls"),
        ("Their versions on the Swarm", "swarmseal -e production ls --remote"),
    ]),
    ("recipients", &[
        ("Who can read which environment", "swarmseal recipients ls"),
        ("Give a new key access to production, then re-encrypt", "swarmseal recipients add ci-prod age1... --to production && swarmseal rekey -e production"),
    ]),
    ("recipients ls", &[("As JSON", "swarmseal recipients ls --format json")]),
    ("recipients add", &[
        ("Add an age key to every environment", "swarmseal recipients add carol age1..."),
        ("Add a key to a group", "swarmseal recipients add dave age1... --to admins"),
    ]),
    ("recipients rm", &[("Remove a key, then re-encrypt without it", "swarmseal recipients rm bob && swarmseal rekey")]),
    ("rekey", &[
        ("Re-encrypt what needs it, in every environment", "swarmseal rekey"),
        ("Accept the files of environment prod, renamed to production", "swarmseal rekey -e production --moved-from prod"),
    ]),
    ("rotate", &[
        ("Regenerate two values as their generate: settings say", "swarmseal -e production rotate db_password session_key"),
        ("Regenerate every generated value older than its rotate_after, in every environment", "swarmseal rotate --due"),
        ("In a scheduled CI job: the pull request's description", "swarmseal rotate --due --format markdown > rotation.md"),
    ]),
    ("check", &[
        ("Check every environment", "swarmseal check"),
        ("Fail for values older than 90 days, as markdown for a pull request", "swarmseal check --max-age 90d --format markdown"),
    ]),
    ("plan", &[
        ("The plan for production", "swarmseal -e production plan"),
        ("In CI: exit 2 when there are changes, 1 on errors", "swarmseal -e production plan --detailed-exitcode || test $? = 2"),
        ("Save it for a later apply", "swarmseal -e production plan --out production.plan"),
    ]),
    ("apply", &[
        ("Apply after confirming the plan", "swarmseal -e production apply"),
        ("Apply a saved plan", "swarmseal -e production apply production.plan"),
        ("In CI, without waiting for the services", "swarmseal -e production apply --yes --detach"),
    ]),
    ("status", &[("On a remote manager", "swarmseal -e production -H ssh://deploy@manager status")]),
    ("exec", &[("Deploy a stack whose compose file names ${SWARMSEAL_DB_PASSWORD}", "swarmseal -e production exec -- docker stack deploy -c compose.yml shop")]),
    ("unlock", &[("Break the lock an interrupted apply left", "swarmseal -e production unlock")]),
    ("textconv", &[("Let git diff show decrypted values", "git config diff.swarmseal.textconv \"swarmseal textconv\"")]),
    ("import", &[
        ("Store a compose file's file: secrets and rewrite it to use them", "swarmseal -e production import compose stack.yml"),
        ("One secret per variable of a dotenv file", "swarmseal -e production import dotenv .env"),
    ]),
    ("import compose", &[
        ("Import, apply, then deploy the stack with the secrets' current names", "swarmseal -e production import compose stack.yml && swarmseal -e production apply && swarmseal -e production exec -- docker stack deploy -c stack.yml shop"),
        ("Replace secrets that already exist", "swarmseal -e production import compose stack.yml --force"),
    ]),
    ("import dotenv", &[
        ("DB_PASSWORD=... becomes the secret db_password", "swarmseal -e staging import dotenv .env"),
        ("As JSON, for a script", "swarmseal -e staging import dotenv .env --format json"),
    ]),
    ("completions", &[
        ("Bash, in ~/.bashrc", "source <(swarmseal completions bash)"),
        ("Zsh, in ~/.zshrc", "source <(swarmseal completions zsh)"),
        ("Fish", "swarmseal completions fish > ~/.config/fish/completions/swarmseal.fish"),
    ]),
    ("man", &[
        ("Install every page", "swarmseal man --dir ~/.local/share/man/man1"),
        ("Read the main page", "swarmseal man | man -l -"),
    ]),
];

/// The examples of a command, by its path (`""`: `swarmseal` itself).
pub fn examples(path: &str) -> &'static [Example] {
    EXAMPLES
        .iter()
        .find(|(p, _)| *p == path)
        .map_or(&[], |(_, list)| list)
}

/// The examples of a command as `--help` shows them, after the options.
fn examples_help(path: &str) -> Option<StyledStr> {
    let list = examples(path);
    if list.is_empty() {
        return None;
    }
    let h = clap::builder::styling::Styles::default()
        .get_header()
        .to_owned();
    let mut text = format!("{h}Examples:{h:#}\n");
    for (what, line) in list {
        text.push_str(&format!("  # {what}\n  {line}\n"));
    }
    Some(text.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command, nested ones too, by path.
    fn paths(cmd: &clap::Command, parent: &str, out: &mut Vec<String>) {
        for sub in cmd.get_subcommands() {
            let path = command_path(parent, sub.get_name());
            paths(sub, &path, out);
            out.push(path);
        }
    }

    #[test]
    fn every_command_has_examples_that_parse() {
        let mut all = vec![String::new()];
        paths(&command(), "", &mut all);
        for path in &all {
            assert!(!examples(path).is_empty(), "{path:?} has no examples");
            for (_, line) in examples(path) {
                for part in line.split(" && ").filter(|p| p.starts_with("swarmseal ")) {
                    // Up to the first word of shell syntax (a redirection, `||`).
                    let words: Vec<&str> = part
                        .split_whitespace()
                        .take_while(|w| !matches!(*w, ">" | "||" | "|"))
                        .collect();
                    let parsed = command().try_get_matches_from(&words);
                    assert!(parsed.is_ok(), "{line:?}: {}", parsed.unwrap_err());
                }
            }
        }
    }

    #[test]
    fn global_options_are_hidden_where_they_do_not_apply() {
        let cmd = command();
        let shown = |sub: &str, id: &str| {
            let sub = cmd.find_subcommand(sub).unwrap();
            let arg = sub.get_arguments().find(|a| a.get_id() == id);
            !arg.unwrap().is_hide_set()
        };
        for sub in ["keygen", "completions", "man"] {
            for id in ["repo", "env", "identity", "host", "format"] {
                assert!(!shown(sub, id), "{sub} shows {id}");
            }
            assert!(shown(sub, "color") && shown(sub, "quiet"), "{sub}");
        }
        for id in ["repo", "env", "identity", "host", "format"] {
            assert!(shown("plan", id), "plan hides {id}");
        }
    }
}
