//! Where each rule is documented: its section of `signatures/README.md`,
//! for a registry to link a finding to (what it finds, why it matters, an
//! example, references).

/// The rules' documentation: `signatures/README.md` of minehound's
/// repository. Anchors from [`rule_anchor`] point into it.
pub const RULES_DOC_URL: &str =
    "https://github.com/minehound/minehound/blob/main/signatures/README.md";

// The headings of the document the anchors are taken from, as built into
// this engine (only the headings: see build.rs).
include!(concat!(env!("OUT_DIR"), "/rule_headings.rs"));

/// The anchor of `rule`'s section in `signatures/README.md` (GitHub's form:
/// the heading in lower case, spaces as `-`, punctuation dropped), or `None`
/// for a rule it does not document (a user's own rules).
///
/// ```
/// assert_eq!(
///     minehound::rule_anchor("MH-XMRIG-ELF").as_deref(),
///     Some("mh-xmrig-elf-rule-mh_xmrig-critical"),
/// );
/// assert_eq!(minehound::rule_anchor("MY-OWN-RULE"), None);
/// ```
pub fn rule_anchor(rule: &str) -> Option<String> {
    RULE_HEADINGS.iter().find_map(|heading| {
        let rest = heading.strip_prefix(rule)?;
        (rest.is_empty() || rest.starts_with(' ')).then(|| github_anchor(heading))
    })
}

/// A link to `rule`'s documentation: [`RULES_DOC_URL`] with its
/// [`rule_anchor`]. For docs served elsewhere (a registry's own mirror),
/// join your base with [`rule_anchor`] instead.
///
/// ```
/// let url = minehound::rule_reference("MH-DROPPER-SCRIPT").unwrap();
/// assert!(url.starts_with(minehound::RULES_DOC_URL));
/// assert!(url.ends_with("#mh-dropper-script-rule-mh_dropper_script-high"));
/// ```
pub fn rule_reference(rule: &str) -> Option<String> {
    rule_anchor(rule).map(|anchor| format!("{RULES_DOC_URL}#{anchor}"))
}

/// The anchor GitHub gives a heading.
fn github_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use minehound_detect::{DETECTOR_RULES, SignaturesBuilder};

    #[test]
    fn every_bundled_rule_and_detector_rule_has_a_section() {
        let signatures = SignaturesBuilder::new().build().unwrap();
        let mut rules: Vec<String> = signatures.rules().iter().map(|r| r.id.clone()).collect();
        rules.extend(DETECTOR_RULES.map(String::from));
        assert!(rules.len() > 10);
        let mut anchors = std::collections::HashSet::new();
        for rule in &rules {
            let anchor = rule_anchor(rule).unwrap_or_else(|| panic!("{rule} has no section"));
            assert!(anchor.starts_with(&rule.to_lowercase()), "{rule}: {anchor}");
            assert!(anchors.insert(anchor), "{rule}: anchor shared");
        }
    }

    #[test]
    fn a_rule_id_must_match_the_whole_heading_word() {
        // MH-XMRIG-ELF must not find a heading of MH-XMRIG-ELF-OTHER, say.
        assert_eq!(rule_anchor("MH-XMR"), None);
        assert_eq!(
            github_anchor("MH-A (rule `MH_A`, low or high)"),
            "mh-a-rule-mh_a-low-or-high"
        );
    }
}
