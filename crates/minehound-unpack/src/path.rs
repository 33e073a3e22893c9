/// Normalises a tar path to an absolute, clean form: `./usr//bin/../sbin/x` becomes
/// `/usr/sbin/x`. `..` never climbs above the root. Bytes that are not UTF-8 are
/// replaced, so every path can be reported.
pub fn normalize(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut parts: Vec<&str> = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    let mut out = String::with_capacity(text.len() + 1);
    for part in parts {
        out.push('/');
        out.push_str(part);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// The report path of a member inside a nested archive: `outer.tar.gz!/inner`.
pub fn join_nested(outer: &str, inner: &str) -> String {
    format!("{outer}!{inner}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_relative_dotted_and_hostile_paths() {
        assert_eq!(normalize(b"./usr//bin/../sbin/x"), "/usr/sbin/x");
        assert_eq!(normalize(b"../../etc/passwd"), "/etc/passwd");
        assert_eq!(normalize(b"/"), "/");
        assert_eq!(normalize(b"a/\xffb"), "/a/\u{fffd}b");
        assert_eq!(join_nested("/x.tgz", "/bin/y"), "/x.tgz!/bin/y");
    }
}
