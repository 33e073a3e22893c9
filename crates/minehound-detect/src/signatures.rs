use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::bundled::{BUNDLED_HASHES, BUNDLED_RULES, BUNDLED_VERSION};
use crate::{Error, HashList, Severity};

/// What a rule says about itself in its `meta:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInfo {
    /// Stable id (`meta: id`), or the rule's identifier when it has none.
    pub id: String,
    /// The rule's identifier in its source.
    pub identifier: String,
    /// Miner family (`meta: family`).
    pub family: Option<String>,
    /// Severity (`meta: severity`); rules without one are `high`.
    pub severity: Severity,
    /// One sentence on what it finds (`meta: description`).
    pub description: String,
    /// Where the rule comes from: `signatures/...` or the user's file.
    pub origin: String,
    /// Rust check a match must pass (`meta: confirm`), see [`Confirm`].
    pub confirm: Option<Confirm>,
}

/// A check in code that a YARA match must pass before it counts: for what a
/// pattern can only approximate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirm {
    /// `confirm = "monero-address"`: a match of a pattern named `$addr*` must
    /// decode as a Monero address with a valid checksum.
    MoneroAddress,
}

/// Compiled YARA rules and hash lists, built once and shared by all workers.
pub struct Signatures {
    pub(crate) rules: yara_x::Rules,
    pub(crate) infos: HashMap<(String, String), RuleInfo>,
    pub(crate) hashes: HashList,
    bundled: bool,
    extra_files: Vec<PathBuf>,
    fingerprint: String,
}

impl Signatures {
    /// SHA-256 over every rule and hash list text that went in, bundled and
    /// user's: two sets with the same fingerprint give the same verdicts, so
    /// cached layer results are keyed by it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The version every report carries: the bundled set's, with `+custom` when
    /// user signatures were added.
    pub fn version(&self) -> String {
        match (self.bundled, self.extra_files.is_empty()) {
            (true, true) => BUNDLED_VERSION.to_string(),
            (true, false) => format!("{BUNDLED_VERSION}+custom"),
            (false, _) => "custom".to_string(),
        }
    }

    /// Whether the bundled set is part of these signatures.
    pub fn bundled(&self) -> bool {
        self.bundled
    }

    /// The user files added to the set.
    pub fn extra_files(&self) -> &[PathBuf] {
        &self.extra_files
    }

    /// Number of compiled YARA rules.
    pub fn rule_count(&self) -> usize {
        self.rules.iter().len()
    }

    /// Number of SHA-256 entries.
    pub fn hash_count(&self) -> usize {
        self.hashes.len()
    }

    /// Every rule's metadata, sorted by id.
    pub fn rules(&self) -> Vec<&RuleInfo> {
        let mut out: Vec<_> = self.infos.values().collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// The version of the signature set compiled into this build.
    pub fn bundled_version() -> &'static str {
        BUNDLED_VERSION
    }

    pub(crate) fn info(&self, namespace: &str, identifier: &str) -> Option<&RuleInfo> {
        self.infos
            .get(&(namespace.to_string(), identifier.to_string()))
    }
}

impl std::fmt::Debug for Signatures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signatures")
            .field("version", &self.version())
            .field("rules", &self.rule_count())
            .field("hashes", &self.hash_count())
            .finish()
    }
}

/// Builds [`Signatures`]: the bundled set unless turned off, plus user files.
#[derive(Debug, Clone)]
pub struct SignaturesBuilder {
    bundled: bool,
    rule_paths: Vec<PathBuf>,
    hash_paths: Vec<PathBuf>,
}

impl Default for SignaturesBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl SignaturesBuilder {
    /// The bundled set and nothing else.
    pub fn new() -> Self {
        SignaturesBuilder {
            bundled: true,
            rule_paths: Vec::new(),
            hash_paths: Vec::new(),
        }
    }

    /// Whether to include the bundled rules and hashes (default: yes).
    pub fn bundled(mut self, yes: bool) -> Self {
        self.bundled = yes;
        self
    }

    /// Adds a `.yar` / `.yara` file, or every such file under a directory.
    pub fn rules(mut self, path: impl Into<PathBuf>) -> Self {
        self.rule_paths.push(path.into());
        self
    }

    /// Adds a hash list file (TSV: `sha256 family severity name source`).
    pub fn hashes(mut self, path: impl Into<PathBuf>) -> Self {
        self.hash_paths.push(path.into());
        self
    }

    /// Compiles everything. A rule that does not compile is an error naming its
    /// file and line; nothing is silently dropped.
    pub fn build(self) -> Result<Signatures, Error> {
        let inputs = self.read_inputs()?;
        let rules = inputs.compile(true)?;
        inputs.assemble(rules, None)
    }

    /// [`build`](Self::build), but the compiled rules are taken from `store`
    /// when it holds them for these very inputs and this `engine` (whatever
    /// else the compiled form depends on: the build of the program), and put
    /// there when it does not. Compiling the bundled set is most of a warm
    /// rescan's cost; loading it is not. A set whose rules `include` other
    /// files is always compiled, since its inputs are not all known here.
    /// Loaded rules give the same fingerprint, so the same cache keys and
    /// verdicts, as compiled ones.
    pub fn build_with_store(
        self,
        store: &dyn CompiledRulesStore,
        engine: &str,
    ) -> Result<Signatures, Error> {
        let inputs = self.read_inputs()?;
        let key = inputs.store_key(engine);
        if let Some(stored) = store.load(&key)
            && let Ok(rules) = yara_x::Rules::deserialize(&stored)
            // Rules that load but do not check out are compiled again.
            && let Ok(signatures) = inputs.assemble(rules, Some(&stored))
        {
            return Ok(signatures);
        }
        // Only rules that pull in no other file are stored: the key holds
        // every text that went in. Any other set compiles as usual.
        let Ok(rules) = inputs.compile(false) else {
            return inputs.assemble(inputs.compile(true)?, None);
        };
        let serialized = rules.serialize().ok();
        if let Some(bytes) = &serialized {
            store.store(&key, bytes);
        }
        inputs.assemble(rules, serialized.as_deref())
    }

    /// Reads every rule and hash list file.
    fn read_inputs(self) -> Result<Inputs, Error> {
        let mut sources: Vec<(String, String)> = Vec::new();
        if self.bundled {
            for (label, text) in BUNDLED_RULES {
                sources.push((label.to_string(), text.to_string()));
            }
        }
        let mut rule_files_read = Vec::new();
        for path in &self.rule_paths {
            for file in rule_files(path)? {
                let text = fs::read_to_string(&file).map_err(|source| Error::Read {
                    path: file.clone(),
                    source,
                })?;
                sources.push((file.display().to_string(), text));
                rule_files_read.push(file);
            }
        }
        let mut hash_lists: Vec<(PathBuf, String)> = Vec::new();
        if self.bundled {
            for (label, text) in BUNDLED_HASHES {
                hash_lists.push((PathBuf::from(label), text.to_string()));
            }
        }
        for path in &self.hash_paths {
            let text = fs::read_to_string(path).map_err(|source| Error::Read {
                path: path.clone(),
                source,
            })?;
            hash_lists.push((path.clone(), text));
        }
        Ok(Inputs {
            bundled: self.bundled,
            sources,
            rule_files: rule_files_read,
            hash_lists,
            hash_paths: self.hash_paths,
        })
    }
}

/// Where compiled rules may be kept between processes: yara-x compiles the
/// bundled set in about 0.4 s, which every process would pay before reading
/// a byte. Whoever can write the store decides what the rules are, so it must
/// be as private as a layer cache.
pub trait CompiledRulesStore {
    /// The bytes stored under `key`, if any.
    fn load(&self, key: &str) -> Option<Vec<u8>>;
    /// Keeps `bytes` under `key`; a failure only costs a later compile.
    fn store(&self, key: &str, bytes: &[u8]);
}

/// Everything a signature set is made from, read but not compiled.
struct Inputs {
    bundled: bool,
    /// `(origin, text)` of each rule file, bundled first.
    sources: Vec<(String, String)>,
    rule_files: Vec<PathBuf>,
    /// `(path or label, text)` of each hash list, bundled first.
    hash_lists: Vec<(PathBuf, String)>,
    hash_paths: Vec<PathBuf>,
}

impl Inputs {
    /// The key of these inputs' compiled rules under `engine`.
    fn store_key(&self, engine: &str) -> String {
        let mut key = Sha256::new();
        key.update(b"minehound compiled rules v1\0");
        for part in [engine.as_bytes()].into_iter().chain(
            self.sources
                .iter()
                .flat_map(|(o, t)| [o.as_bytes(), t.as_bytes()]),
        ) {
            key.update((part.len() as u64).to_le_bytes());
            key.update(part);
        }
        hex::encode(key.finalize())
    }

    /// Compiles the rule texts; with `includes` false, a rule file that
    /// `include`s another fails to compile.
    fn compile(&self, includes: bool) -> Result<yara_x::Rules, Error> {
        let mut compiler = yara_x::Compiler::new();
        compiler.colorize_errors(false);
        compiler.enable_includes(includes);
        for (index, (origin, text)) in self.sources.iter().enumerate() {
            // One namespace per file: rule names from different files never clash.
            compiler.new_namespace(&namespace(index));
            let source = yara_x::SourceCode::from(text.as_str()).with_origin(origin.clone());
            compiler
                .add_source(source)
                .map_err(|e| Error::RuleCompile {
                    path: PathBuf::from(origin),
                    message: e.to_string(),
                })?;
        }
        Ok(compiler.build())
    }

    /// The signatures made of these inputs and their compiled `rules`, whose
    /// serialized form is `serialized` when the caller has it already.
    fn assemble(
        &self,
        rules: yara_x::Rules,
        serialized: Option<&[u8]>,
    ) -> Result<Signatures, Error> {
        let mut infos = HashMap::new();
        for rule in rules.iter() {
            let origin = rule
                .namespace()
                .strip_prefix('f')
                .and_then(|index| index.parse::<usize>().ok())
                .and_then(|index| self.sources.get(index))
                .map(|(origin, _)| origin.clone())
                .unwrap_or_default();
            let info = rule_info(&rule, origin.clone()).map_err(|message| Error::RuleCompile {
                path: PathBuf::from(origin),
                message,
            })?;
            infos.insert(
                (rule.namespace().to_string(), rule.identifier().to_string()),
                info,
            );
        }

        let mut fingerprint = Sha256::new();
        let mut fingerprint_part = |kind: &str, bytes: &[u8]| {
            for part in [kind.as_bytes(), &(bytes.len() as u64).to_le_bytes(), bytes] {
                fingerprint.update(part);
            }
        };
        for (_, text) in &self.sources {
            fingerprint_part("rules", text.as_bytes());
        }
        // The compiled form too: it covers files pulled in with `include`.
        let serialized = match serialized {
            Some(bytes) => Some(std::borrow::Cow::Borrowed(bytes)),
            None => rules.serialize().ok().map(std::borrow::Cow::Owned),
        };
        if let Some(compiled) = &serialized {
            fingerprint_part("compiled", compiled);
        }
        let mut hashes = HashList::default();
        for (path, text) in &self.hash_lists {
            hashes.parse(path, text)?;
            fingerprint_part("hashes", text.as_bytes());
        }

        let mut extra_files = self.rule_files.clone();
        extra_files.extend(self.hash_paths.iter().cloned());
        Ok(Signatures {
            rules,
            infos,
            hashes,
            bundled: self.bundled,
            extra_files,
            fingerprint: hex::encode(fingerprint.finalize()),
        })
    }
}

/// The namespace of the rule file at `index`.
fn namespace(index: usize) -> String {
    format!("f{index}")
}

/// A rule file, or the `.yar` / `.yara` files under a directory (sorted).
fn rule_files(path: &Path) -> Result<Vec<PathBuf>, Error> {
    let meta = fs::metadata(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut found = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = fs::read_dir(&dir).map_err(|source| Error::Read {
            path: dir.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| Error::Read {
                path: dir.clone(),
                source,
            })?;
            let p = entry.path();
            let kind = entry.file_type().map_err(|source| Error::Read {
                path: p.clone(),
                source,
            })?;
            if kind.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "yar" || e == "yara") {
                found.push(p);
            }
        }
    }
    if found.is_empty() {
        return Err(Error::NoRules {
            path: path.to_path_buf(),
        });
    }
    found.sort();
    Ok(found)
}

fn rule_info(rule: &yara_x::Rule<'_, '_>, origin: String) -> Result<RuleInfo, String> {
    let mut info = RuleInfo {
        id: rule.identifier().to_string(),
        identifier: rule.identifier().to_string(),
        family: None,
        severity: Severity::High,
        description: rule.identifier().to_string(),
        origin,
        confirm: None,
    };
    for (key, value) in rule.metadata() {
        let text = match value {
            yara_x::MetaValue::String(text) => std::borrow::Cow::Borrowed(text),
            // A string with an escape in it (`\"`, `\x03`) comes as bytes.
            yara_x::MetaValue::Bytes(bytes) => String::from_utf8_lossy(bytes.as_ref()),
            _ => continue,
        };
        let text = text.as_ref();
        match key {
            "id" => info.id = text.to_string(),
            "family" => info.family = Some(text.to_string()),
            "description" => info.description = text.to_string(),
            "confirm" => match text {
                "monero-address" => info.confirm = Some(Confirm::MoneroAddress),
                other => {
                    return Err(format!(
                        "rule {}: meta confirm: unknown check {other:?} (known: \"monero-address\")",
                        rule.identifier()
                    ));
                }
            },
            "severity" => {
                info.severity = text
                    .parse()
                    .map_err(|e| format!("rule {}: meta severity: {e}", rule.identifier()))?
            }
            _ => {}
        }
    }
    Ok(info)
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_fingerprint_is_stable_and_follows_every_input() {
        let dir = tempfile::tempdir().unwrap();
        let a = SignaturesBuilder::new().build().unwrap();
        let b = SignaturesBuilder::new().build().unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint(), "same inputs, same key");
        // A rule file that includes another: editing the included file moves it.
        let included = dir.path().join("inc.yar");
        std::fs::write(&included, "rule inc { condition: false }\n").unwrap();
        let top = dir.path().join("top.yar");
        std::fs::write(&top, format!("include \"{}\"\n", included.display())).unwrap();
        let before = SignaturesBuilder::new().rules(&top).build().unwrap();
        std::fs::write(&included, "rule inc { condition: true }\n").unwrap();
        let after = SignaturesBuilder::new().rules(&top).build().unwrap();
        assert_ne!(before.fingerprint(), after.fingerprint());
        assert_ne!(before.fingerprint(), a.fingerprint());
    }

    /// A store in memory that counts what goes in and out.
    #[derive(Default)]
    struct Memory {
        entries: std::sync::Mutex<HashMap<String, Vec<u8>>>,
        stored: std::sync::atomic::AtomicUsize,
    }

    impl CompiledRulesStore for Memory {
        fn load(&self, key: &str) -> Option<Vec<u8>> {
            self.entries.lock().unwrap().get(key).cloned()
        }
        fn store(&self, key: &str, bytes: &[u8]) {
            self.stored
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.entries
                .lock()
                .unwrap()
                .insert(key.to_string(), bytes.to_vec());
        }
    }

    #[test]
    fn stored_rules_are_keyed_by_every_rule_text_and_the_engine() {
        let dir = tempfile::tempdir().unwrap();
        let store = Memory::default();
        let stored = || store.stored.load(std::sync::atomic::Ordering::SeqCst);
        let user = dir.path().join("user.yar");
        std::fs::write(
            &user,
            "rule user_a { strings: $a = \"aaaa\" condition: $a }\n",
        )
        .unwrap();
        let with_user = || SignaturesBuilder::new().rules(&user);
        let first = with_user().build_with_store(&store, "engine 1").unwrap();
        assert_eq!(stored(), 1);
        let again = with_user().build_with_store(&store, "engine 1").unwrap();
        assert_eq!(stored(), 1, "loaded, not compiled again");
        assert_eq!(again.fingerprint(), first.fingerprint());
        assert_eq!(again.rules(), first.rules());
        assert_eq!(again.extra_files(), first.extra_files());

        // Loaded rules find what compiled ones find.
        let data = b"xx aaaa xx";
        let found = |s: &Signatures| {
            Detector::new(s)
                .check(crate::FileKind::Text, data)
                .unwrap()
                .into_iter()
                .map(|d| d.rule)
                .collect::<Vec<_>>()
        };
        assert_eq!(found(&again), vec!["user_a".to_string()]);
        assert_eq!(found(&again), found(&first));

        // Another engine, or an edited rule: a new entry.
        with_user().build_with_store(&store, "engine 2").unwrap();
        assert_eq!(stored(), 2);
        std::fs::write(
            &user,
            "rule user_b { strings: $b = \"bbbb\" condition: $b }\n",
        )
        .unwrap();
        let edited = with_user().build_with_store(&store, "engine 1").unwrap();
        assert_eq!(stored(), 3);
        assert_ne!(edited.fingerprint(), first.fingerprint());

        // Rules that include files are compiled every time: the included
        // file's text is not part of any key. Wherever the statement sits.
        let included = dir.path().join("inc.yar");
        std::fs::write(&included, "rule inc { condition: false }\n").unwrap();
        let top = dir.path().join("top.yar");
        std::fs::write(
            &top,
            format!("/* shared */ include \"{}\"\n", included.display()),
        )
        .unwrap();
        let before = SignaturesBuilder::new()
            .rules(&top)
            .build_with_store(&store, "engine 1")
            .unwrap();
        std::fs::write(&included, "rule inc { condition: true }\n").unwrap();
        let after = SignaturesBuilder::new()
            .rules(&top)
            .build_with_store(&store, "engine 1")
            .unwrap();
        assert_eq!(stored(), 3, "nothing stored");
        assert_ne!(before.fingerprint(), after.fingerprint());
    }

    use super::*;
    use crate::{DETECTOR_RULES, Detector};

    const README: &str = include_str!("../../../signatures/README.md");

    /// The README section of a rule id: from its `### ID ` heading to the next heading.
    fn section(id: &str) -> Option<&'static str> {
        let start = README.find(&format!("\n### {id} "))? + 1;
        let rest = &README[start..];
        let end = rest[4..].find("\n#").map_or(rest.len(), |i| i + 5);
        Some(&rest[..end])
    }

    #[test]
    fn rule_ids_are_unique_and_every_rule_is_documented() {
        let signatures = SignaturesBuilder::new().build().unwrap();
        let mut ids: Vec<String> = signatures.rules().iter().map(|r| r.id.clone()).collect();
        ids.extend(DETECTOR_RULES.map(String::from));
        let mut seen = std::collections::HashSet::new();
        for id in &ids {
            assert!(seen.insert(id), "rule id {id} used twice");
            assert!(
                id.starts_with("MH-")
                    && id
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-'),
                "{id}: ids are upper case with dashes"
            );
            let doc = section(id)
                .unwrap_or_else(|| panic!("{id}: no `### {id}` section in signatures/README.md"));
            // A description that is only the rule's name means its meta was lost.
            if let Some(rule) = signatures.rules().into_iter().find(|r| &r.id == id) {
                assert!(
                    rule.description.len() > 40 && rule.description != rule.identifier,
                    "{id}: its description is {:?}",
                    rule.description
                );
            }
            for part in [
                "**Finds:**",
                "**Why it matters:**",
                "**Example:**",
                "**References:**",
            ] {
                assert!(doc.contains(part), "{id}: its README section lacks {part}");
            }
        }
        // Every bundled YARA rule carries the documented meta keys.
        for (label, text) in BUNDLED_RULES {
            let rules = text.matches("\nrule ").count();
            for key in [
                "id",
                "family",
                "severity",
                "description",
                "why",
                "example",
                "reference",
            ] {
                let found = text.matches(&format!("\n        {key} = \"")).count();
                assert_eq!(
                    found, rules,
                    "{label}: {rules} rules but {found} `{key}` meta lines"
                );
            }
        }
    }

    #[test]
    fn every_bundled_hash_names_its_source() {
        for (label, text) in BUNDLED_HASHES {
            let mut one = HashList::default();
            one.parse(Path::new(label), text).unwrap();
            assert!(!one.is_empty(), "{label}");
            assert!(
                one.entries()
                    .all(|(_, e)| e.source.len() > 10 && !e.name.is_empty()),
                "{label}"
            );
        }
    }
}
