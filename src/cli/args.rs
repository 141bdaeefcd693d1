//! The command line's clap definitions (the README's "Commands"). Nothing here runs a command.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use clap_complete::ArgValueCandidates;

use crate::cli::commands::completions::{environment_names, recipient_names, secret_names};

use crate::cli::output::{ColourChoice, Format};
use crate::crypto::value::Charset;

#[derive(Debug, Parser)]
#[command(
    name = "swarmseal",
    version,
    about = "Secrets-as-code for Docker Swarm: age-encrypted secrets in git, planned and applied to a Swarm",
    long_about = None,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes, before or after its name; `--help` shows each command those
/// that apply to it (see [`crate::cli::help::command`]).
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Repository folder (default: the nearest parent folder with swarmseal.yaml)
    #[arg(short = 'C', long = "repo", global = true, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// Environment (default: the only one in swarmseal.yaml; `init`, `check` and `rekey` take several)
    #[arg(short = 'e', long = "env", global = true, value_name = "NAME",
          add = ArgValueCandidates::new(environment_names))]
    pub env: Vec<String>,
    /// Identity file: age, ssh-ed25519/ssh-rsa, or passphrase-protected (repeatable)
    #[arg(short = 'i', long = "identity", global = true, value_name = "FILE")]
    pub identity: Vec<PathBuf>,
    /// Docker endpoint: unix://PATH, tcp://HOST:PORT (TLS), ssh://[USER@]HOST[:PORT], http://HOST:PORT
    #[arg(short = 'H', long = "host", global = true, value_name = "URL")]
    pub host: Option<String>,
    /// Output format of reports (and, with json, of errors on standard error)
    #[arg(long, global = true, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// When to colour output: auto honours NO_COLOR, CLICOLOR, CLICOLOR_FORCE and terminals
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t = ColourChoice::Auto)]
    pub color: ColourChoice,
    /// Print only errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print more about what is done
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new repository: swarmseal.yaml, secrets/<env>/, fingerprint keys
    Init(InitArgs),
    /// Generate a new age identity
    Keygen(KeygenArgs),
    /// Encrypt a value into the repository (from standard input unless --file or --generate)
    Set(SetArgs),
    /// Print a decrypted value, byte-exact
    Get(GetArgs),
    /// Edit a value in $VISUAL/$EDITOR through a private temporary file
    Edit(NameArg),
    /// Remove a secret from the repository
    Rm(RmArgs),
    /// List the environment's secrets
    Ls(LsArgs),
    /// List, add or remove the manifest's recipients
    #[command(subcommand)]
    Recipients(RecipientsCommand),
    /// Re-encrypt secrets to the manifest's current recipients
    Rekey(RekeyArgs),
    /// Regenerate generated values (`generate:` in swarmseal.yaml) in the repository
    Rotate(RotateArgs),
    /// Check the repository: manifest, names, sizes, leaks, decryptability, recipients, rotation
    Check(CheckArgs),
    /// Show what apply would change on the Swarm
    Plan(PlanArgs),
    /// Make the Swarm match the repository: create, rotate, re-point, remove
    Apply(ApplyArgs),
    /// Managed secrets on the Swarm, their versions and the services using them
    Status,
    /// Run a command with SWARMSEAL_<NAME> set to each secret's current Swarm name
    Exec(ExecArgs),
    /// Break a stale apply lock
    Unlock(UnlockArgs),
    /// Print a decrypted file for `git diff` (diff.swarmseal.textconv)
    Textconv(TextconvArgs),
    /// Store a compose file's `file:` secrets, or a dotenv file's variables, as secrets
    #[command(subcommand)]
    Import(ImportCommand),
    /// Print the shell code that completes commands, environments and secret names
    Completions(CompletionsArgs),
    /// Print the man page (roff), or write one page per command to a folder
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Project name, the scope of everything this repository manages on a Swarm (default: the folder's name)
    #[arg(long)]
    pub project: Option<String>,
    /// Named recipient public key, NAME=KEY (repeatable; default: your identity's public key)
    #[arg(long = "recipient", value_name = "NAME=KEY")]
    pub recipients: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Write the identity to FILE (mode 0600; never overwritten) instead of standard output
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct NameArg {
    /// Secret name (db_password, tls/api.crt or tls.api.crt)
    #[arg(add = ArgValueCandidates::new(secret_names))]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// Secret name (db_password, tls/api.crt or tls.api.crt)
    #[arg(add = ArgValueCandidates::new(secret_names))]
    pub name: String,
    /// Read the value from FILE, byte-exact
    #[arg(long, value_name = "FILE", conflicts_with = "generate")]
    pub file: Option<PathBuf>,
    /// Generate a random value
    #[arg(long)]
    pub generate: bool,
    /// Length of the generated value, in characters [default: the secret's `generate:` length
    /// in swarmseal.yaml, else 32]
    #[arg(long, value_name = "N", requires = "generate")]
    pub length: Option<usize>,
    /// Characters of the generated value [default: the secret's `generate:` charset in
    /// swarmseal.yaml, else alnum]
    #[arg(long, value_enum, requires = "generate")]
    pub charset: Option<Charset>,
    /// Drop one trailing line ending ("\n" or "\r\n", as `echo` or an editor adds) from the
    /// value read from standard input or --file
    #[arg(long, conflicts_with = "generate")]
    pub trim: bool,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// Secret name (db_password, tls/api.crt or tls.api.crt)
    #[arg(add = ArgValueCandidates::new(secret_names))]
    pub name: String,
    /// Print a binary value (not UTF-8 text, or with control characters) on a terminal too
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Secret names (db_password, tls/api.crt or tls.api.crt); all or none are removed
    #[arg(required = true, value_name = "NAME", add = ArgValueCandidates::new(secret_names))]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Show the Swarm versions and the services using them
    #[arg(long)]
    pub remote: bool,
}

#[derive(Debug, Subcommand)]
pub enum RecipientsCommand {
    /// List named recipients and the environments they can read
    Ls,
    /// Add a named public key (age1..., ssh-ed25519 ..., ssh-rsa ...)
    Add {
        /// Name of the recipient in swarmseal.yaml (alice, ci-prod)
        name: String,
        /// Public key: age1..., or an ssh-ed25519/ssh-rsa public key line (quoted)
        key: String,
        /// Environment or group to add the recipient to (repeatable; default: every environment)
        #[arg(long = "to", value_name = "ENV|GROUP")]
        to: Vec<String>,
    },
    /// Remove a named recipient and every reference to it
    Rm {
        /// Name of the recipient in swarmseal.yaml
        #[arg(add = ArgValueCandidates::new(recipient_names))]
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct RekeyArgs {
    /// Re-encrypt every file, even those already encrypted to the current recipients
    #[arg(long)]
    pub force: bool,
    /// Accept files encrypted for environment OLD, renamed to the one given with -e, and
    /// re-encrypt them for it
    #[arg(long, value_name = "OLD")]
    pub moved_from: Option<String>,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// Secrets to regenerate, as their `generate:` settings in swarmseal.yaml say
    #[arg(value_name = "NAME", required_unless_present = "due", conflicts_with = "due",
          add = ArgValueCandidates::new(secret_names))]
    pub names: Vec<String>,
    /// Regenerate every generated secret older than its rotate_after (in every environment
    /// unless -e is given), and list the due secrets that have no `generate:`
    #[arg(long)]
    pub due: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Fail for values older than this (e.g. 90d), in addition to each secret's rotate_after
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub max_age: Option<std::time::Duration>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Save the plan (no values) for `swarmseal apply FILE`
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Exit 0 when there are no changes, 2 when there are, 1 on errors
    #[arg(long)]
    pub detailed_exitcode: bool,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A plan saved with `plan --out`; refused when the repository or the Swarm changed since
    #[arg(value_name = "PLANFILE")]
    pub planfile: Option<PathBuf>,
    /// Apply without asking for confirmation
    #[arg(short, long)]
    pub yes: bool,
    /// Wait until the re-pointed services have converged (the default, as `docker service
    /// update` does)
    #[arg(long, conflicts_with = "detach")]
    pub wait: bool,
    /// Do not wait for the re-pointed services (removals that wait for their updates are left
    /// to a later apply)
    #[arg(short, long)]
    pub detach: bool,
    /// How long to wait for each service's update
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub wait_timeout: std::time::Duration,
    /// How long to wait for another apply's lock on this project and environment
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration_or_zero)]
    pub lock_timeout: std::time::Duration,
    /// Docker API calls in flight at once
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The command and its arguments (after --)
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// Break the lock even when its holder is an apply still running on this host
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct TextconvArgs {
    /// The .age file to show (git passes a temporary copy)
    pub file: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Store the top-level `file:` secrets of a compose file, and rewrite the file to use them
    Compose(ImportComposeArgs),
    /// Store one secret per variable of a dotenv file (DB_PASSWORD becomes db_password)
    Dotenv(ImportDotenvArgs),
}

#[derive(Debug, Args)]
pub struct ImportComposeArgs {
    /// The compose file; its `file:` entries become `external: true` with
    /// `name: ${SWARMSEAL_<NAME>}`, comments and layout kept
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Replace secrets that already exist in the environment
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ImportDotenvArgs {
    /// The dotenv file: KEY=VALUE lines, `export KEY=...`, quotes, # comments
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Replace secrets that already exist in the environment
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write swarmseal.1 and one page per command (swarmseal-plan.1...) to DIR instead
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

fn parse_duration_or_zero(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e}; use a duration such as 30s, 5m or 0s"))
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("the duration must be longer than zero".into()),
        Err(e) => Err(format!("{e}; use a duration such as 90d, 12w or 36h")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn clap_definitions_are_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
        crate::cli::help::command().debug_assert();
    }
}
