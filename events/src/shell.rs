//! Values printed inside commands that support staff paste into a shell.
//! Customer data (an email address, a processor id) can hold `$()`, a
//! backquote or `;`: each value is quoted so the shell passes it through
//! unchanged and runs nothing else.

/// One POSIX shell word that stands for exactly `value`. Plain values
/// (letters, digits and `@%+=:,./_-`) are printed as they are, everything
/// else in single quotes.
pub fn shell_word(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@%+=:,./_-".contains(&b));
    if plain {
        return value.to_string();
    }
    // Inside single quotes nothing is special but the quote itself, which is
    // closed, escaped and reopened.
    format!("'{}'", value.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::shell_word;

    #[test]
    fn plain_values_stay_readable() {
        assert_eq!(shell_word("ann@example.com"), "ann@example.com");
        assert_eq!(shell_word("pi_3Abc"), "pi_3Abc");
        assert_eq!(shell_word("confirmation:pi_1"), "confirmation:pi_1");
    }

    #[test]
    fn anything_else_is_one_quoted_word() {
        assert_eq!(shell_word("a$(touch x)@x.com"), "'a$(touch x)@x.com'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
    }
}
