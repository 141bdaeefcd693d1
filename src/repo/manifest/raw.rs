//! The manifest as serde-saphyr reads it: private "raw" structs whose values carry their
//! source location, so that validation can point at a line and column.

use super::*;

/// A YAML mapping kept in document order, with the location of each key.
pub(super) struct Entries<V>(pub(super) Vec<(Spanned<String>, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Entries<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for EntriesVisitor<V> {
            type Value = Entries<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<Spanned<String>, V>()? {
                    out.push(entry);
                }
                Ok(Entries(out))
            }
        }
        deserializer.deserialize_map(EntriesVisitor(PhantomData))
    }
}

pub(super) type Text = Spanned<String>;
pub(super) type TextList = Spanned<Vec<Text>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawManifest {
    pub(super) version: Option<Text>,
    pub(super) project: Option<Text>,
    pub(super) recipients: Option<Spanned<Entries<Text>>>,
    pub(super) groups: Option<Spanned<Entries<Option<TextList>>>>,
    pub(super) environments: Option<Spanned<Entries<Option<RawEnvironment>>>>,
    pub(super) secrets: Option<Spanned<Entries<Option<RawSecret>>>>,
    pub(super) keep_versions: Option<Text>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEnvironment {
    pub(super) recipients: Option<Spanned<Vec<Text>>>,
    pub(super) docker_host: Option<Text>,
    pub(super) swarm_id: Option<Text>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSecret {
    pub(super) target: Option<Text>,
    pub(super) uid: Option<Text>,
    pub(super) gid: Option<Text>,
    pub(super) mode: Option<Text>,
    pub(super) labels: Option<Spanned<Entries<Text>>>,
    pub(super) rotate_after: Option<Text>,
    /// `generate: { length, charset }`; `generate:` alone (null) means the defaults, so a
    /// present key is `Some` even when its value is null.
    #[serde(default, deserialize_with = "present")]
    pub(super) generate: Option<Spanned<Option<RawGenerate>>>,
}

/// `Some` for a key that is present, whatever its value (null included); with
/// `#[serde(default)]`, `None` for a key that is not.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> std::result::Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGenerate {
    pub(super) length: Option<Text>,
    pub(super) charset: Option<Text>,
}

impl RawManifest {
    pub(super) fn recipient_names(&self) -> Vec<&str> {
        entry_names(self.recipients.as_ref().map(|r| &r.value))
    }
    pub(super) fn group_names(&self) -> Vec<&str> {
        entry_names(self.groups.as_ref().map(|g| &g.value))
    }
    pub(super) fn environment_names(&self) -> Vec<&str> {
        entry_names(self.environments.as_ref().map(|e| &e.value))
    }
}

pub(super) fn entry_names<V>(entries: Option<&Entries<V>>) -> Vec<&str> {
    entries
        .map(|e| e.0.iter().map(|(k, _)| k.value.as_str()).collect())
        .unwrap_or_default()
}

/// `file:line:column` for a location, or just the file when the location is unknown.
pub(super) fn at(path: &Path, loc: &Location) -> String {
    if loc.line() == 0 {
        path.display().to_string()
    } else {
        format!("{}:{}:{}", path.display(), loc.line(), loc.column())
    }
}

pub(super) fn err_at<T>(path: &Path, spanned: &Spanned<T>, message: impl fmt::Display) -> Error {
    Error::new(format!("{}: {message}", at(path, &spanned.referenced)))
}

pub(super) fn parse_raw(text: &str, path: &Path) -> Result<RawManifest> {
    let raw: RawManifest = serde_saphyr::from_str(text).map_err(|e| yaml_error(path, &e))?;
    let empty = raw.version.is_none()
        && raw.project.is_none()
        && raw.recipients.is_none()
        && raw.groups.is_none()
        && raw.environments.is_none()
        && raw.secrets.is_none()
        && raw.keep_versions.is_none();
    if empty {
        return Err(Error::new(format!("{}: the manifest is empty", path.display())).hint(
            "run `swarmseal init` to write one, or add version: 1, project:, recipients: and environments: (see the README)",
        ));
    }
    Ok(raw)
}
