//! The command line at first use (issue 11): man pages, `--help`, completions, exit codes of
//! usage errors, colours and a closed pipe.
//!
//! Needs `man` (man-db), `bash` and `script` (util-linux, for a terminal).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::common::cli::{
    assert_exit, assert_ok, describe, on_terminal, run_command, stderr, stdout, TestRepo, BIN,
};

/// Every command, nested ones as `recipients add`, as the main `--help` lists them.
fn command_paths(repo: &TestRepo) -> Vec<String> {
    let listed = |args: &[&str]| -> Vec<String> {
        let out = repo.run(args, None);
        assert_ok(&out);
        let text = stdout(&out);
        let section = text.split("Commands:\n").nth(1).unwrap_or_default();
        section
            .lines()
            .take_while(|l| !l.trim().is_empty())
            .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|name| *name != "help")
            .map(str::to_owned)
            .collect()
    };
    let mut paths = Vec::new();
    for name in listed(&["--help"]) {
        let nested = listed(&[&name, "--help"]);
        paths.extend(nested.iter().map(|sub| format!("{name} {sub}")));
        paths.push(name);
    }
    assert!(paths.len() > 15, "too few commands found: {paths:?}");
    paths
}

/// `swarmseal PATH... --help`.
fn help_of(repo: &TestRepo, path: &str) -> String {
    let mut args: Vec<&str> = path.split(' ').collect();
    args.push("--help");
    let out = repo.run(&args, None);
    assert_ok(&out);
    stdout(&out)
}

/// The lines of a `--help` section (`Arguments:`, `Global options:`), up to the next one.
fn section<'a>(help: &'a str, heading: &str) -> Vec<&'a str> {
    help.split(&format!("\n{heading}\n"))
        .nth(1)
        .map(|rest| {
            rest.lines()
                .take_while(|l| l.is_empty() || l.starts_with(' '))
                .filter(|l| !l.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn man_dir_writes_a_page_per_command_that_man_renders_without_warnings() {
    let repo = TestRepo::bare();
    let dir = repo.work.join("man1");
    let out = repo.run_in(&repo.work, ["man", "--dir"], Some(&dir), None);
    assert_ok(&out);
    let written: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut expected: BTreeSet<String> = command_paths(&repo)
        .iter()
        .map(|p| format!("swarmseal-{}.1", p.replace(' ', "-")))
        .collect();
    expected.insert("swarmseal.1".into());
    assert_eq!(written, expected);

    // `swarmseal man` prints the main page.
    let out = repo.run(&["man"], None);
    assert_ok(&out);
    assert_eq!(out.stdout, std::fs::read(dir.join("swarmseal.1")).unwrap());

    for page in &written {
        let text = render_page(&dir.join(page));
        for heading in [
            "NAME",
            "SYNOPSIS",
            "EXAMPLES",
            "EXIT STATUS",
            "ENVIRONMENT",
            "FILES",
            "SEE ALSO",
        ] {
            assert!(
                text.lines().any(|l| l == heading),
                "{page} has no {heading}:\n{text}"
            );
        }
        for reference in page_references(&text) {
            assert!(
                written.contains(&format!("{reference}.1")),
                "{page} refers to {reference}(1), which man --dir did not write"
            );
        }
    }
    let main = render_page(&dir.join("swarmseal.1"));
    for variable in ["SWARMSEAL_AGE_KEY", "DOCKER_HOST", "NO_COLOR", "VISUAL"] {
        assert!(main.contains(variable), "no {variable} in ENVIRONMENT");
    }
    assert!(main.contains("identity.txt") && main.contains("swarmseal.yaml"));
    let plan = render_page(&dir.join("swarmseal-plan.1"));
    assert!(plan.contains("Changes present"), "{plan}");
    let keygen = render_page(&dir.join("swarmseal-keygen.1"));
    assert!(!keygen.contains("--host") && !keygen.contains("DOCKER_HOST"));
}

/// `man -l --warnings=all PAGE` as plain text, asserting that it succeeds without a word on
/// stderr (groff's warnings about the roff).
fn render_page(page: &Path) -> String {
    let mut cmd = Command::new("man");
    cmd.args(["-l", "--warnings=all"])
        .arg(page)
        .env("LC_ALL", "C")
        .env("MANWIDTH", "80")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .env("MAN_KEEP_FORMATTING", "")
        .env_remove("MANROFFOPT");
    let out = run_command(cmd, None);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "man -l {} warns or fails\n{}",
        page.display(),
        describe(&out)
    );
    // Bold and underline by overstriking, when man renders for a terminal.
    let text = stdout(&out);
    let mut plain = String::new();
    for c in text.chars() {
        if c == '\u{8}' {
            plain.pop();
        } else {
            plain.push(c);
        }
    }
    plain
}

/// Every `swarmseal...(1)` a rendered page names (hyphenated names may be broken across lines).
fn page_references(text: &str) -> Vec<String> {
    let joined = text.replace("\u{2010}\n", "").replace("-\n", "-");
    let joined: String = joined.split_whitespace().collect::<Vec<_>>().join(" ");
    joined
        .match_indices("(1)")
        .filter_map(|(at, _)| {
            let before = &joined[..at];
            let start = before
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .map_or(0, |i| i + 1);
            let name = &before[start..];
            name.starts_with("swarmseal").then(|| name.to_string())
        })
        .collect()
}

#[test]
fn help_shows_global_options_where_they_apply_with_examples_and_described_arguments() {
    let repo = TestRepo::bare();
    for path in command_paths(&repo) {
        let help = help_of(&repo, &path);
        assert!(
            help.contains("\nExamples:\n"),
            "{path} --help has no examples:\n{help}"
        );
        let global = section(&help, "Global options:").join("\n");
        assert!(
            global.contains("--color"),
            "{path}: no Global options heading:\n{help}"
        );
        // `  <NAME>  text`, or (long help) `  <NAME>` then indented text.
        let arguments = section(&help, "Arguments:");
        for (i, line) in arguments.iter().enumerate() {
            let described = line.split_whitespace().count() > 1
                || arguments
                    .get(i + 1)
                    .is_some_and(|next| !next.trim_start().starts_with('<'));
            assert!(
                !line.trim_start().starts_with('<') || described,
                "{path}: argument without a description: {line:?}\n{help}"
            );
        }
        let takes_none = matches!(path.as_str(), "keygen" | "completions" | "man");
        for option in ["--repo", "--env", "--identity", "--host", "--format"] {
            assert_eq!(
                help.contains(option),
                !takes_none && applies(&path, option),
                "{path} --help and {option}:\n{help}"
            );
        }
    }
    let plan = help_of(&repo, "plan");
    let global = section(&plan, "Global options:").join("\n");
    for option in [
        "--repo",
        "--env",
        "--identity",
        "--host",
        "--format",
        "--quiet",
    ] {
        assert!(
            global.contains(option),
            "plan: {option} not under Global options"
        );
    }
    let options = section(&plan, "Options:").join("\n");
    assert!(
        options.contains("--out") && !options.contains("--host"),
        "{plan}"
    );
    let init = help_of(&repo, "init");
    assert!(init.contains("default: one named `default`"), "{init}");
}

/// Which of the five options a command shows (the ones it uses).
fn applies(path: &str, option: &str) -> bool {
    let hidden: &[&str] = match path {
        "textconv" => &["--repo", "--env", "--host", "--format"],
        p if p.starts_with("recipients") => &["--env", "--identity", "--host"],
        "init" | "set" | "get" | "edit" | "rekey" | "check" => &["--host"],
        p if p.starts_with("import") => &["--host"],
        "rm" | "rotate" => &["--identity", "--host"],
        "ls" | "status" | "unlock" => &["--identity"],
        _ => &[],
    };
    !hidden.contains(&option)
}

#[test]
fn global_options_work_before_and_after_the_command() {
    let repo = TestRepo::new();
    repo.set("staging", "db_password", b"v");
    let root = repo.root.to_str().unwrap();
    for args in [
        &["-C", root, "-e", "staging", "ls"][..],
        &["ls", "-e", "staging", "-C", root],
        &["-C", root, "ls", "-e", "staging"],
    ] {
        let out = repo.run_in(&repo.work, args.iter().copied(), None, None);
        assert_ok(&out);
        assert!(stdout(&out).contains("db_password"), "{}", describe(&out));
    }
    // Options a command does not show are still accepted, as they were.
    let out = repo.run(&["-e", "staging", "completions", "bash"], None);
    assert_ok(&out);
}

#[test]
fn no_command_is_a_usage_error() {
    let repo = TestRepo::bare();
    for args in [&[][..], &["recipients"]] {
        let out = repo.run(args, None);
        assert_exit(&out, 1);
        assert!(out.stdout.is_empty(), "{}", describe(&out));
        assert!(stderr(&out).contains("Usage:"), "{}", describe(&out));
    }
}

/// Runs `swarmseal ARGS` with standard output a pipe whose reader is already gone.
fn run_into_closed_pipe(repo: &TestRepo, args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut cmd = repo.command();
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped());
    cmd.output().unwrap()
}

#[test]
fn a_closed_pipe_ends_quietly_with_exit_0() {
    let repo = TestRepo::bare();
    for args in [
        &["man"][..],
        &["completions", "bash"],
        &["completions", "zsh"],
        &["--help"],
        &["--version"],
        &["plan", "--help"],
        &["help", "apply"],
        &["keygen"],
    ] {
        let out = run_into_closed_pipe(&repo, args);
        assert_exit(&out, 0);
        assert!(out.stderr.is_empty(), "{args:?}\n{}", describe(&out));
    }
}

/// Bash completion of `words` (the last one being completed) with the script of
/// `swarmseal completions bash`, `swarmseal` on PATH, in folder `cwd`: COMPREPLY, and what
/// bash printed on stderr.
fn complete_in_bash(repo: &TestRepo, cwd: &Path, words: &[&str]) -> (Vec<String>, String) {
    let bin_dir = repo.work.join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let link = bin_dir.join("swarmseal");
    if !link.exists() {
        std::os::unix::fs::symlink(BIN, &link).unwrap();
    }
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let script = format!(
        r#"source <(swarmseal completions bash) || exit 9
COMP_WORDS=({words})
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
_clap_complete_swarmseal swarmseal "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}"
"#,
        words = quoted.join(" ")
    );
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // The controlled environment of the tests' commands, for bash and what it runs.
    let mut cmd = Command::new("bash");
    for (k, v) in repo.command_in(cwd).get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.current_dir(cwd).env("PATH", path).args(["-c", &script]);
    let out = run_command(cmd, None);
    assert_ok(&out);
    let replies = stdout(&out).lines().map(str::to_owned).collect();
    (replies, stderr(&out))
}

#[test]
fn bash_completes_environment_and_secret_names() {
    let repo = TestRepo::new();
    repo.set("staging", "db_password", b"a");
    repo.set("staging", "tls/api.crt", b"b");
    repo.set("production", "prod_only", b"c");
    let names = |replies: &[String]| -> BTreeSet<String> {
        replies
            .iter()
            .filter(|r| !r.starts_with('-'))
            .cloned()
            .collect()
    };
    let set = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();

    let (replies, err) = complete_in_bash(&repo, &repo.root, &["swarmseal", "-e", ""]);
    assert_eq!(names(&replies), set(&["production", "staging"]), "{err}");
    let (replies, _) = complete_in_bash(&repo, &repo.root, &["swarmseal", "plan", "-e", "st"]);
    assert_eq!(replies, ["staging"]);

    let (replies, _) = complete_in_bash(&repo, &repo.root, &["swarmseal", "get", ""]);
    assert_eq!(
        names(&replies),
        set(&["db_password", "prod_only", "tls.api.crt"])
    );
    let (replies, _) = complete_in_bash(
        &repo,
        &repo.root,
        &["swarmseal", "-e", "staging", "get", ""],
    );
    assert_eq!(names(&replies), set(&["db_password", "tls.api.crt"]));
    let (replies, _) = complete_in_bash(
        &repo,
        &repo.root,
        &["swarmseal", "edit", "-e", "production", ""],
    );
    assert_eq!(names(&replies), set(&["prod_only"]));

    // -C names the repository; outside of one there is nothing to offer, and no error.
    let root = repo.root.to_str().unwrap();
    let (replies, _) = complete_in_bash(&repo, &repo.work, &["swarmseal", "-C", root, "rm", "db"]);
    assert_eq!(replies, ["db_password"]);
    let (replies, err) = complete_in_bash(&repo, &repo.work, &["swarmseal", "get", ""]);
    assert!(names(&replies).is_empty(), "{replies:?}");
    assert!(err.is_empty(), "completion printed into the shell: {err}");

    let (replies, _) = complete_in_bash(&repo, &repo.root, &["swarmseal", "pl"]);
    assert_eq!(replies, ["plan"]);
}

/// The command with colour variables of the outer environment removed.
fn without_colour_env(mut cmd: Command) -> Command {
    for var in ["NO_COLOR", "CLICOLOR", "CLICOLOR_FORCE"] {
        cmd.env_remove(var);
    }
    cmd.env("TERM", "xterm");
    cmd
}

/// Runs `swarmseal ARGS` (not on a terminal) with extra variables; true when anything it
/// printed is coloured.
fn coloured(repo: &TestRepo, vars: &[(&str, &str)], args: &[&str]) -> bool {
    let mut cmd = without_colour_env(repo.command());
    cmd.envs(vars.iter().copied()).args(args);
    let out = run_command(cmd, None);
    out.stdout.contains(&0x1b) || out.stderr.contains(&0x1b)
}

#[test]
fn colour_off_the_terminal_only_when_forced() {
    let repo = TestRepo::new();
    let missing = ["-e", "staging", "get", "nope"];
    for args in [&missing[..], &["--help"], &["bogus"], &["plan", "--help"]] {
        assert!(
            !coloured(&repo, &[], args),
            "{args:?} coloured off a terminal"
        );
        assert!(
            coloured(&repo, &[("CLICOLOR_FORCE", "1")], args),
            "{args:?}"
        );
        assert!(
            !coloured(&repo, &[("CLICOLOR_FORCE", "0")], args),
            "{args:?}"
        );
        let mut never = vec!["--color", "never"];
        never.extend_from_slice(args);
        assert!(
            !coloured(&repo, &[("CLICOLOR_FORCE", "1")], &never),
            "{args:?}"
        );
        let mut always = vec!["--color=always"];
        always.extend_from_slice(args);
        assert!(coloured(&repo, &[("NO_COLOR", "1")], &always), "{args:?}");
    }
}

#[test]
fn colour_on_a_terminal_unless_no_color_or_clicolor_0() {
    let repo = TestRepo::new();
    let shown = |vars: &[(&str, &str)], args: &[&str]| {
        let mut cmd = without_colour_env(repo.command());
        cmd.envs(vars.iter().copied()).args(args);
        let (_, shown) = on_terminal(&cmd, &[]);
        shown
    };
    for args in [&["-e", "staging", "get", "nope"][..], &["--help"]] {
        let plain = shown(&[], args);
        assert!(
            plain.contains('\x1b'),
            "{args:?} not coloured on a terminal: {plain:?}"
        );
        for vars in [
            &[("NO_COLOR", "1")][..],
            &[("CLICOLOR", "0")],
            &[("TERM", "dumb")],
        ] {
            let text = shown(vars, args);
            assert!(!text.contains('\x1b'), "{args:?} {vars:?}: {text:?}");
        }
    }
}
