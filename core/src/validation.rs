//! Name and label validators with the exact message text of
//! `k8s.io/apimachinery/pkg/util/validation` (validation.go).
//!
//! Every `is_*` function returns a `Vec<String>` of human readable problems;
//! an empty vector means the value is valid. The messages are byte-for-byte
//! the ones apimachinery produces (Kubernetes 1.2x–1.33 wording: lengths are
//! reported as "characters", label keys as "a qualified name"), so callers can
//! embed them in `Status` causes and `field.Invalid`-style messages.
//!
//! No regex engine is used: each regular expression quoted in the messages is
//! implemented as a hand-written byte check, documented next to it.

/// Maximum length of an RFC 1123 label (`validation.DNS1123LabelMaxLength`).
pub const DNS1123_LABEL_MAX_LENGTH: usize = 63;

/// Maximum length of an RFC 1123 subdomain (`validation.DNS1123SubdomainMaxLength`).
pub const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;

/// Maximum length of the name part of a qualified name / label key
/// (`qualifiedNameMaxLength` in apimachinery).
pub const QUALIFIED_NAME_MAX_LENGTH: usize = 63;

/// Maximum length of a label value (`validation.LabelValueMaxLength`).
pub const LABEL_VALUE_MAX_LENGTH: usize = 63;

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

/// `validation.MaxLenError`: `"must be no more than <length> characters"`.
pub fn max_len_error(length: usize) -> String {
    format!("must be no more than {length} characters")
}

/// `validation.EmptyError`: `"must be non-empty"`.
pub fn empty_error() -> String {
    "must be non-empty".to_string()
}

/// `validation.RegexError`: explains a failed regular expression match.
///
/// Reproduces apimachinery's formatting quirk exactly, including the double
/// space before each `or`: `msg (e.g. 'a',  or 'b', regex used for validation is 'fmt')`.
/// With no examples the result is `msg (regex used for validation is 'fmt')`.
pub fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let mut out = String::from(msg);
    out.push_str(" (e.g. ");
    for (i, example) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push('\'');
        out.push_str(example);
        out.push_str("', ");
    }
    out.push_str("regex used for validation is '");
    out.push_str(fmt);
    out.push_str("')");
    out
}

/// Matches `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`.
fn matches_dns1123_label(value: &str) -> bool {
    let b = value.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match (b.first(), b.last()) {
        (Some(&first), Some(&last)) => {
            alnum(first) && alnum(last) && b.iter().all(|&c| alnum(c) || c == b'-')
        }
        _ => false,
    }
}

/// Matches `^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`.
fn matches_dns1123_subdomain(value: &str) -> bool {
    value.split('.').all(matches_dns1123_label)
}

/// Matches `^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`.
fn matches_qualified_name(value: &str) -> bool {
    let b = value.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter()
                    .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// `validation.IsDNS1123Label`: an RFC 1123 label (e.g. a namespace name).
///
/// Checks length ≤ 63 bytes and `[a-z0-9]([-a-z0-9]*[a-z0-9])?`. A value
/// that is a valid subdomain but not a label gets `"must not contain dots"`
/// (the wording of current apimachinery); otherwise the regex message.
pub fn is_dns1123_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LENGTH));
    }
    if !matches_dns1123_label(value) {
        if matches_dns1123_subdomain(value) {
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(
                DNS1123_LABEL_ERR_MSG,
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

/// `validation.IsDNS1035Label`: an RFC 1035 label (a CustomResourceDefinition's
/// plural, singular, short names and version names).
///
/// Checks length ≤ 63 bytes and `[a-z]([-a-z0-9]*[a-z0-9])?`; the messages
/// are apimachinery's (`a DNS-1035 label must consist of ...`).
pub fn is_dns1035_label(value: &str) -> Vec<String> {
    const FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
    const MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
    let mut errs = Vec::new();
    if value.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LENGTH));
    }
    if !(matches_dns1123_label(value) && value.as_bytes()[0].is_ascii_lowercase()) {
        errs.push(regex_error(MSG, FMT, &["my-name", "abc-123"]));
    }
    errs
}

/// `validation.IsDNS1123Subdomain`: an RFC 1123 subdomain (most object names).
///
/// Checks length ≤ 253 bytes and dot-separated RFC 1123 labels. Messages:
/// `must be no more than 253 characters` and
/// `a lowercase RFC 1123 subdomain must consist of ... (e.g. 'example.com', regex used for validation is '...')`.
pub fn is_dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !matches_dns1123_subdomain(value) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_ERR_MSG,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// `validation.IsQualifiedName`: a label key / annotation key / finalizer-like
/// name, `[prefix/]name`.
///
/// The optional prefix must be a DNS-1123 subdomain (messages prefixed with
/// `prefix part `, or `prefix part must be non-empty` for a leading `/`); the
/// name must be 1..=63 bytes of `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
/// (messages prefixed with `name part `). More than one `/` yields the single
/// `a qualified name must consist of ... with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')`.
pub fn is_qualified_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push(format!("prefix part {}", empty_error()));
            } else {
                errs.extend(
                    is_dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_ERR_MSG,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push(format!("name part {}", empty_error()));
    } else if name.len() > QUALIFIED_NAME_MAX_LENGTH {
        errs.push(format!(
            "name part {}",
            max_len_error(QUALIFIED_NAME_MAX_LENGTH)
        ));
    }
    if !matches_qualified_name(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_ERR_MSG,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// `validation.IsValidLabelValue`: a label value.
///
/// Empty is valid; otherwise ≤ 63 bytes of
/// `(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?`. Messages:
/// `must be no more than 63 characters` and `a valid label must be an empty string or consist of ...`.
pub fn is_valid_label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_VALUE_MAX_LENGTH {
        errs.push(max_len_error(LABEL_VALUE_MAX_LENGTH));
    }
    if !value.is_empty() && !matches_qualified_name(value) {
        errs.push(regex_error(
            LABEL_VALUE_ERR_MSG,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
    const NAME_PART_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    const VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

    #[test]
    fn regex_error_formats_like_apimachinery() {
        assert_eq!(
            regex_error("msg", "re", &[]),
            "msg (regex used for validation is 're')"
        );
        assert_eq!(
            regex_error("msg", "re", &["a"]),
            "msg (e.g. 'a', regex used for validation is 're')"
        );
        assert_eq!(
            regex_error("msg", "re", &["a", "b"]),
            "msg (e.g. 'a',  or 'b', regex used for validation is 're')"
        );
    }

    #[test]
    fn dns1123_subdomain_table() {
        let long = "a".repeat(254);
        let max = format!("{}.{}", "a".repeat(63), "b".repeat(189));
        assert_eq!(max.len(), 253);
        let cases: Vec<(&str, Vec<&str>)> = vec![
            ("a", vec![]),
            ("ab", vec![]),
            ("abc", vec![]),
            ("a1", vec![]),
            ("a-1", vec![]),
            ("a--1--2--b", vec![]),
            ("0", vec![]),
            ("01", vec![]),
            ("a.b", vec![]),
            ("example.com", vec![]),
            ("1.2.3.4", vec![]),
            ("a-1.b-2.c-3", vec![]),
            (&max, vec![]),
            ("", vec![SUBDOMAIN_MSG]),
            ("A", vec![SUBDOMAIN_MSG]),
            ("ABC", vec![SUBDOMAIN_MSG]),
            ("aBc", vec![SUBDOMAIN_MSG]),
            ("-", vec![SUBDOMAIN_MSG]),
            ("a-", vec![SUBDOMAIN_MSG]),
            ("-a", vec![SUBDOMAIN_MSG]),
            ("a.", vec![SUBDOMAIN_MSG]),
            (".a", vec![SUBDOMAIN_MSG]),
            ("a..b", vec![SUBDOMAIN_MSG]),
            ("a.-b", vec![SUBDOMAIN_MSG]),
            ("a_b", vec![SUBDOMAIN_MSG]),
            ("a b", vec![SUBDOMAIN_MSG]),
            ("a/b", vec![SUBDOMAIN_MSG]),
            ("é", vec![SUBDOMAIN_MSG]),
            ("a\n", vec![SUBDOMAIN_MSG]),
        ];
        for (input, want) in cases {
            assert_eq!(is_dns1123_subdomain(input), want, "input {input:?}");
        }
        assert_eq!(
            is_dns1123_subdomain(&long),
            vec!["must be no more than 253 characters".to_string()]
        );
        assert_eq!(
            is_dns1123_subdomain(&"A".repeat(254)),
            vec![
                "must be no more than 253 characters".to_string(),
                SUBDOMAIN_MSG.to_string()
            ]
        );
    }

    #[test]
    fn dns1123_label_table() {
        let cases: Vec<(&str, Vec<&str>)> = vec![
            ("a", vec![]),
            ("abc", vec![]),
            ("a-1", vec![]),
            ("0", vec![]),
            ("123-abc", vec![]),
            ("", vec![LABEL_MSG]),
            ("A", vec![LABEL_MSG]),
            ("a-", vec![LABEL_MSG]),
            ("-a", vec![LABEL_MSG]),
            ("a_b", vec![LABEL_MSG]),
            ("a.b", vec!["must not contain dots"]),
            ("a..b", vec![LABEL_MSG]),
        ];
        for (input, want) in cases {
            assert_eq!(is_dns1123_label(input), want, "input {input:?}");
        }
        assert!(is_dns1123_label(&"a".repeat(63)).is_empty());
        assert_eq!(
            is_dns1123_label(&"a".repeat(64)),
            vec!["must be no more than 63 characters".to_string()]
        );
    }

    #[test]
    fn qualified_name_table() {
        let multi_slash = "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')";
        let prefix_msg = format!("prefix part {SUBDOMAIN_MSG}");
        let cases: Vec<(String, Vec<String>)> = vec![
            ("simple".into(), vec![]),
            ("now-with-dashes".into(), vec![]),
            ("1-starts-with-num".into(), vec![]),
            ("1234".into(), vec![]),
            ("simple/simple".into(), vec![]),
            ("now-with-dashes/simple".into(), vec![]),
            ("now-with-dashes/now-with-dashes".into(), vec![]),
            ("now.with.dots/simple".into(), vec![]),
            ("now-with.dashes-and.dots/simple".into(), vec![]),
            ("1-num.2-num/3-num".into(), vec![]),
            ("1234/5678".into(), vec![]),
            ("1.2.3.4/5678".into(), vec![]),
            ("Uppercase_Is_OK_123".into(), vec![]),
            ("example.com/Uppercase_Is_OK_123".into(), vec![]),
            ("requests.storage-foo".into(), vec![]),
            ("a".repeat(63), vec![]),
            (format!("{}/{}", "a".repeat(253), "b".repeat(63)), vec![]),
            (
                "".into(),
                vec!["name part must be non-empty".into(), NAME_PART_MSG.into()],
            ),
            ("nospecialchars%^=@".into(), vec![NAME_PART_MSG.into()]),
            ("cantendwithadash-".into(), vec![NAME_PART_MSG.into()]),
            ("-cantstartwithadash-".into(), vec![NAME_PART_MSG.into()]),
            ("only/one/slash".into(), vec![multi_slash.into()]),
            ("Example.com/abc".into(), vec![prefix_msg.clone()]),
            ("example_com/abc".into(), vec![prefix_msg.clone()]),
            (
                "example.com/".into(),
                vec!["name part must be non-empty".into(), NAME_PART_MSG.into()],
            ),
            (
                "/simple".into(),
                vec!["prefix part must be non-empty".into()],
            ),
            (
                "a".repeat(64),
                vec!["name part must be no more than 63 characters".into()],
            ),
            (
                format!("{}/b", "a".repeat(254)),
                vec![format!(
                    "prefix part {}",
                    "must be no more than 253 characters"
                )],
            ),
            ("app:".into(), vec![NAME_PART_MSG.into()]),
        ];
        for (input, want) in cases {
            assert_eq!(is_qualified_name(&input), want, "input {input:?}");
        }
    }

    #[test]
    fn label_value_table() {
        let cases: Vec<(String, Vec<String>)> = vec![
            ("".into(), vec![]),
            ("simple".into(), vec![]),
            ("now-with-dashes".into(), vec![]),
            ("1-starts-with-num".into(), vec![]),
            ("end-with-num-1".into(), vec![]),
            ("1234".into(), vec![]),
            ("a".repeat(63), vec![]),
            ("Uppercase_And.dots".into(), vec![]),
            (
                "a".repeat(64),
                vec!["must be no more than 63 characters".into()],
            ),
            ("nospecialchars%^=@".into(), vec![VALUE_MSG.into()]),
            ("Tama-nui-te-rā.is.Māori.sun".into(), vec![VALUE_MSG.into()]),
            ("\\backslashes\\are\\bad".into(), vec![VALUE_MSG.into()]),
            ("-starts-with-dash".into(), vec![VALUE_MSG.into()]),
            ("ends-with-dash-".into(), vec![VALUE_MSG.into()]),
            (".starts.with.dot".into(), vec![VALUE_MSG.into()]),
            ("ends.with.dot.".into(), vec![VALUE_MSG.into()]),
            ("a/b".into(), vec![VALUE_MSG.into()]),
            (
                format!("-{}", "a".repeat(63)),
                vec![
                    "must be no more than 63 characters".into(),
                    VALUE_MSG.into(),
                ],
            ),
        ];
        for (input, want) in cases {
            assert_eq!(is_valid_label_value(&input), want, "input {input:?}");
        }
    }
}
