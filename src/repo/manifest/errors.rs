//! YAML syntax and shape errors, worded for a person: the file, line and column, what was
//! expected, and a hint. The mapping matches on serde-saphyr's typed error variants, never
//! on its message text; otherwise its own wording is kept, rendered without the location
//! our prefix already shows.

use std::borrow::Cow;

use super::*;

/// Turns a serde-saphyr error into `file:line:column: what was expected` plus a hint.
pub(super) fn yaml_error(path: &Path, err: &serde_saphyr::Error) -> Error {
    let loc = err.location().filter(|l| l.line() > 0);
    let prefix = match &loc {
        Some(l) => at(path, l),
        None => path.display().to_string(),
    };
    use serde_saphyr::Error as E;
    let (what, hint) = match err.without_snippet() {
        E::SerdeUnknownField {
            field, expected, ..
        } => {
            let allowed = expected.join(", ");
            let section = section(expected);
            return Error::new(format!(
                "{prefix}: unknown key {field:?} {section}; expected one of: {allowed}"
            ))
            .hint(format!(
                "fix the spelling or remove the key; allowed keys {section} are: {allowed}"
            ));
        }
        E::DuplicateMappingKey { key, .. } => {
            let key = key.as_deref().unwrap_or("?");
            return Error::new(format!("{prefix}: duplicate key {key:?}"))
                .hint("each key may appear only once in a mapping; remove or rename one of them");
        }
        E::MultipleDocuments { .. } => (
            "the file holds more than one YAML document (---); expected a single document"
                .to_string(),
            "keep one document in the manifest",
        ),
        E::Unexpected { expected, .. } if expected.starts_with("mapping") => (
            "expected a mapping (key: value entries) here".to_string(),
            "recipients:, groups:, environments:, secrets:, each environment and each secret's settings are mappings (see the README)",
        ),
        E::Unexpected { expected, .. } if expected.starts_with("sequence") => (
            "expected a list here, such as [alice, bob]".to_string(),
            "the recipients of an environment and the members of a group are lists: [alice, admins] or one `- name` per line",
        ),
        E::Unexpected { expected, .. } if expected.starts_with("string") => (
            "expected a single value here, not a list or mapping".to_string(),
            "check the indentation and brackets at that line",
        ),
        E::NullIntoString { .. } => (
            "expected a value here, found nothing".to_string(),
            "write a value after the colon or dash, or remove the entry",
        ),
        _ => (
            format!("invalid YAML: {}", message_without(err, loc)),
            "check the YAML at that line: indentation (spaces, not tabs), quotes, colons and brackets",
        ),
    };
    Error::new(format!("{prefix}: {what}")).hint(hint)
}

/// Where a set of allowed keys belongs, for the message.
fn section(expected: &[&str]) -> &'static str {
    let same =
        |keys: &[&str]| keys.len() == expected.len() && keys.iter().all(|k| expected.contains(k));
    if same(TOP_KEYS) {
        "at the top level"
    } else if same(ENV_KEYS) {
        "in an environment"
    } else if same(SECRET_KEYS) {
        "in the settings of a secret"
    } else if same(GENERATE_KEYS) {
        "in a secret's generate:"
    } else {
        "here"
    }
}

/// serde-saphyr's own message for `err`, without the location already in our prefix.
fn message_without(err: &serde_saphyr::Error, shown: Option<Location>) -> String {
    err.without_snippet()
        .render_with_formatter(&WithoutLocation(shown))
}

/// serde-saphyr's default wording, minus the location suffix for the location `.0`
/// (which our `file:line:column` prefix already shows); other locations are kept.
struct WithoutLocation(Option<Location>);

impl serde_saphyr::MessageFormatter for WithoutLocation {
    fn localizer(&self) -> &dyn serde_saphyr::Localizer {
        self
    }

    fn format_message<'a>(&self, err: &'a serde_saphyr::Error) -> Cow<'a, str> {
        serde_saphyr::DefaultMessageFormatter.format_message(err)
    }
}

impl serde_saphyr::Localizer for WithoutLocation {
    fn attach_location<'a>(&self, base: Cow<'a, str>, loc: Location) -> Cow<'a, str> {
        if Some(loc) == self.0 {
            base
        } else {
            serde_saphyr::DEFAULT_ENGLISH_LOCALIZER.attach_location(base, loc)
        }
    }
}
