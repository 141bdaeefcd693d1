//! The content diff of a plain config, as the plan shows it (`similar`, unified). Plain
//! configs are plain text in git already; secrets and encrypted configs never get one.

/// The unified diff from `old` to `new` (three lines of context), headed with the config's
/// name; a line saying so when either side is not UTF-8 text.
pub fn unified(name: &str, old: &[u8], new: &[u8]) -> String {
    match (std::str::from_utf8(old), std::str::from_utf8(new)) {
        (Ok(old), Ok(new)) => similar::TextDiff::from_lines(old, new)
            .unified_diff()
            .context_radius(3)
            .header(&format!("a/{name}"), &format!("b/{name}"))
            .to_string(),
        _ => format!(
            "binary content: {} (was {})\n",
            crate::domain::text::plural(new.len(), "byte"),
            crate::domain::text::plural(old.len(), "byte")
        ),
    }
}

/// How a change names what it is about: the secret's name, or `NAME (config)`.
pub fn label(c: &crate::plan::Change) -> String {
    match c.kind {
        crate::domain::state::Kind::Secret => c.secret.clone(),
        kind => format!("{} ({kind})", c.secret),
    }
}

/// A diff for a terminal or a log, each line indented by `pad`, control characters
/// escaped (the content comes from the repository), added lines green and removed ones red
/// with `colour`.
pub fn human(diff: &str, pad: &str, colour: bool) -> String {
    let mut out = String::new();
    for line in diff.lines() {
        let code = match line.as_bytes().first() {
            _ if line.starts_with("+++") || line.starts_with("---") => "1",
            Some(b'+') => "32",
            Some(b'-') => "31",
            Some(b'@') => "36",
            _ => "",
        };
        let text = crate::domain::text::clean(line);
        let text = if code.is_empty() {
            text.into_owned()
        } else {
            crate::domain::text::paint(colour, code, &text)
        };
        out.push_str(&format!("{pad}{text}\n"));
    }
    out
}

/// A diff for a pull-request comment: a collapsed block with a `diff` code fence longer
/// than any run of backticks in it.
pub fn markdown(name: &str, diff: &str) -> String {
    let longest = diff.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    let body = crate::domain::text::clean_keeping_lines(diff);
    let name = crate::domain::text::clean(name).replace(['<', '>', '&'], "_");
    format!(
        "\n<details><summary>Diff of config <code>{name}</code></summary>\n\n{fence}diff\n{}{}{fence}\n\n</details>\n",
        body,
        if body.ends_with('\n') { "" } else { "\n" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_a_unified_diff_and_binary_is_described() {
        let d = unified("nginx.conf", b"a\nb\nc\n", b"a\nB\nc\n");
        assert!(d.starts_with("--- a/nginx.conf\n+++ b/nginx.conf\n"), "{d}");
        assert!(d.contains("-b\n+B\n"), "{d}");
        let created = unified("x", b"", b"one\n");
        assert!(created.contains("+one\n"), "{created}");
        assert_eq!(
            unified("x", &[0xff, 0], b"t"),
            "binary content: 1 byte (was 2 bytes)\n"
        );
    }
}
